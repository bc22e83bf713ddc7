namespace FhirSortie.Server.Portal;

/// <summary>
/// The one stylesheet (served at /portal/portal.css, so the CSP needs no inline style): plain CSS an old hospital
/// browser understands (no custom properties, no grid), readable at 1366x768, contrast at least 4.5:1, a visible
/// focus ring, and a print layout without navigation or buttons.
/// </summary>
public static class PortalStyles
{
    public const string Css = """
        body{font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.45;color:#1a1a1a;background:#fff;margin:0}
        a{color:#0b4f9c}
        a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #c25400;outline-offset:2px}
        .skip{position:absolute;left:-9999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:10}
        .banner{background:#0b3d6e;color:#fff;padding:.5rem 1rem;overflow:hidden}
        .banner a{color:#fff}.brand{font-weight:bold;margin:.2rem 0;float:left;margin-right:2rem}
        .banner nav ul{list-style:none;margin:.2rem 0;padding:0;float:left}.banner nav li{display:inline;margin-right:1rem}
        .who{float:right}.who span{margin-right:.5rem}
        main{max-width:78rem;margin:0 auto;padding:1rem}
        footer{max-width:78rem;margin:2rem auto 1rem;padding:0 1rem;color:#444;font-size:.9rem}
        h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.25rem;margin:1.5rem 0 .5rem}
        table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
        th,td{border:1px solid #8a8a8a;padding:.35rem .5rem;text-align:left;vertical-align:top}
        th{background:#e8eef5}
        button{font-size:1rem;padding:.35rem .8rem;border:1px solid #0b3d6e;background:#fff;color:#0b3d6e;border-radius:3px;cursor:pointer}
        button.primary{background:#0b3d6e;color:#fff}button.danger{border-color:#9b1c1c;color:#9b1c1c}
        form.inline{display:inline-block;margin:0 .3rem .3rem 0}
        label{font-weight:bold}input,select,textarea{font-size:1rem;padding:.3rem;border:1px solid #555}
        .field{margin:.6rem 0}.hint{color:#444;font-size:.9rem}.error{color:#9b1c1c;font-weight:bold}
        .notice{background:#eef6ee;border-left:4px solid #1e6b30;padding:.5rem 1rem}
        .alert{background:#fdf0e6;border-left:4px solid #9b4a00;padding:.5rem 1rem}
        .status{display:inline-block;padding:0 .4rem;border:1px solid #555;border-radius:3px;font-size:.9rem}
        .card{border:1px solid #8a8a8a;border-radius:4px;padding:.6rem 1rem;margin:0 0 1rem}
        .ok{color:#1e6b30}.missing{color:#9b1c1c}
        .sheet{max-width:45rem}
        a.button{display:inline-block;padding:.35rem .8rem;border:1px solid #0b3d6e;background:#0b3d6e;color:#fff;border-radius:3px;text-decoration:none}
        fieldset{border:1px solid #8a8a8a;margin:0 0 1rem;padding:.4rem 1rem}legend{font-weight:bold;padding:0 .3rem}
        @media print{form.printable{display:block}form.printable button,form.printable input[type=file]{display:none}}
        @media print{.banner,.skip,footer,form,button,nav,.noprint{display:none}main{max-width:none;padding:0}body{font-size:12pt}a{color:#000;text-decoration:none}}
        figure.chart{margin:.5rem 0}figure.chart svg{max-width:100%;height:auto}.bars .bar{fill:#0b4f9c}.bars text{fill:#1a1a1a}.bars .masked{fill:#6b3a00}
        table.figures th[scope=row]{font-weight:normal;background:#fff}
        @media print{.bars .bar{fill:#333}section.indicator{break-inside:avoid}.banner,.skip,footer,form,button,nav,.noprint{display:none}main{max-width:none;padding:0}body{font-size:12pt}a{color:#000;text-decoration:none}}
        """;
}
