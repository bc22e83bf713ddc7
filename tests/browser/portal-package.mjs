// The USMP's exit-package form of the portal (issue 22, view 1) in headless Chromium, driven by role and accessible
// name like portal.mjs: usmp-medecin refuses a bad package (errors next to the fields, what was typed kept), creates a
// package for the planned-exit person through "Nouvelle sortie", completes the unannounced-release person's package
// through "Compléter" (PDF letter, referral, appointment); a CSAPA user gets no form. The C# test
// (PortalPackageBrowserTests) checks the effects through the API.
//
//   node portal-package.mjs --base http://127.0.0.1:5000 --ins <demo INS of the planned exit> [--shots DIR]
//
// Last line of output: "RESULT {json}" or "FAILED <reason>"; exit code 0 only for RESULT.
import { parseArgs, launchBrowser, shooter, signIn as signInAt, step } from "./portal-common.mjs";

const args = parseArgs(["base", "ins"]);
const base = args.base;
const result = {};
const browser = await launchBrowser(args);
const shot = shooter(args);
const signIn = user => signInAt(browser, base, user);

/** dd/MM/yyyy of today + days, in Paris. */
function day(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  return new Intl.DateTimeFormat("fr-FR", { timeZone: "Europe/Paris", day: "2-digit", month: "2-digit", year: "numeric" }).format(d);
}

/** The organisation whose option text matches, chosen in the directory's list. */
async function chooseOrganisation(page, pattern) {
  const list = page.getByLabel("Structure qui prend le relais");
  await list.selectOption(await list.locator("option").filter({ hasText: pattern }).first().getAttribute("value"));
}

const text = page => page.locator("main").innerText();
const errorOf = async (page, field) => (await page.locator(`#${field}-erreur`).count()) ? (await page.locator(`#${field}-erreur`).innerText()).trim() : null;
const submit = page => Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Enregistrer le dossier de sortie" }).click()]);

async function openNewExit(page) {
  await Promise.all([page.waitForURL(/\/portal\/sorties\/nouvelle$/), page.getByRole("link", { name: "Nouvelle sortie" }).click()]);
  await page.getByLabel("Type d'identifiant").selectOption({ label: "INS de démonstration" });
  await page.getByLabel("Identifiant exact").fill(args.ins);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Rechercher" }).click()]);
  await Promise.all([page.waitForURL(/\/portal\/sorties\/dossier\/[^/]+$/), page.getByRole("link", { name: /Préparer la sortie de Aubin/ }).click()]);
  return await page.locator("input[name=cle]").inputValue();
}

try {
  // 1. usmp-medecin: a bad package (no release date, a dose that is no number, a bridging supply of 0) is refused.
  {
    const { context, page } = await signIn("usmp-medecin");
    await page.getByRole("heading", { name: "Sorties", exact: true }).waitFor();
    result.badKey = await openNewExit(page);
    await page.getByLabel(/Date d'entrée en détention/).fill(day(-200));
    await page.getByLabel("Médicament").first().selectOption("N07BC01");
    await page.getByLabel("Dose par prise").first().fill("huit");
    await page.getByLabel("Durée du traitement (jours)").first().fill("28");
    await page.getByLabel("Dépannage remis à la sortie (jours)").first().fill("0");
    await page.getByLabel("Texte de la lettre").fill("Lettre gardée malgré l'erreur");
    step("usmp-medecin: bad package");
    const [refused] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Enregistrer le dossier de sortie" }).click()]);
    result.bad = {
      status: refused.status(),
      summary: (await page.locator("#erreurs").innerText()).trim(),
      sortie: await errorOf(page, "sortie"),
      dose: await errorOf(page, "med1-dose"),
      depannage: await errorOf(page, "med1-depannage"),
      invalid: await page.locator("[aria-invalid=true]").evaluateAll(list => list.map(e => e.id)),
      keptDose: await page.getByLabel("Dose par prise").first().inputValue(),
      keptLetter: await page.getByLabel("Texte de la lettre").inputValue(),
      keptMedication: await page.getByLabel("Médicament").first().inputValue(),
      summaryLinks: await page.locator("#erreurs a").evaluateAll(list => list.map(a => a.getAttribute("href"))),
    };
    await shot(page, "sortie-erreurs");

    // 2. A good package for the same person, through "Nouvelle sortie".
    await page.goto(`${base}/portal/sorties`);
    result.goodKey = await openNewExit(page);
    step("usmp-medecin: good package");
    await page.getByLabel(/Date d'entrée en détention/).fill(day(-200));
    await page.getByLabel("Date de sortie (obligatoire)").fill(day(3));
    await page.getByLabel("Heure de sortie").fill("09:30");
    await page.getByLabel("Type de sortie").selectOption("fin-de-peine");
    const line = n => page.getByRole("group", { name: `Ligne ${n}` });
    await line(1).getByLabel("Médicament").selectOption("N07BC01");
    await line(1).getByLabel("Dose par prise").fill("8");
    await line(1).getByLabel("Durée du traitement (jours)").fill("28");
    await line(1).getByLabel("Dépannage remis à la sortie (jours)").fill("7");
    await line(1).getByLabel("Quantité remise en dépannage").fill("7");
    await line(2).getByLabel("Médicament").selectOption("V03AB15");
    await line(2).getByLabel("Dose par prise").fill("1,8");
    await line(2).getByLabel("Fréquence").selectOption("besoin");
    await line(2).getByLabel("Durée du traitement (jours)").fill("30");
    await page.getByLabel("Oui", { exact: true }).check();
    await page.getByLabel("Texte de la lettre").fill("Lettre de liaison (portail) : buprénorphine 8 mg/j, dépannage 7 jours remis, kit de naloxone remis.");
    await page.getByLabel("Chercher dans l'annuaire (nom ou FINESS)").fill("Tilleuls");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Rechercher une structure" }).click()]);
    result.searchKeptDose = await line(1).getByLabel("Dose par prise").inputValue();
    await chooseOrganisation(page, /CSAPA Les Tilleuls/);
    await page.getByLabel("Motif de l'adressage").fill("Relais du TSO sous 24 h après la sortie");
    await page.getByLabel("Date du premier rendez-vous").fill(day(4));
    await page.getByLabel("Heure du rendez-vous").fill("14:00");
    await page.getByLabel("Lieu du rendez-vous").fill("CSAPA Les Tilleuls, 12 rue de l'Exemple, 75011 Paris");
    await shot(page, "sortie-formulaire");
    await submit(page);
    result.good = { path: new URL(page.url()).pathname, saved: (await page.locator("#enregistre").count()) ? await page.locator("#enregistre").innerText() : await text(page),
      rpps: await page.locator("#rpps").innerText() };

    // 3. "Compléter" from the board: the unannounced release's reduced package gets a PDF letter, a referral and an appointment.
    await page.goto(`${base}/portal/sorties`);
    await shot(page, "sorties-nouvelle");
    await Promise.all([page.waitForURL(/\/portal\/sorties\/dossier\/[^/]+\/[^/]+$/), page.getByRole("link", { name: /Compléter le dossier de Yanis/ }).click()]);
    result.completeKey = await page.locator("input[name=cle]").inputValue();
    result.completePath = new URL(page.url()).pathname;
    step("usmp-medecin: complete with an oversized PDF");
    await page.locator("#lettre-pdf").setInputFiles({ name: "trop-gros.pdf", mimeType: "application/pdf", buffer: Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(2_200_000, 32)]) });
    await chooseOrganisation(page, /CSAPA Les Tilleuls/);
    await page.getByLabel("Motif de l'adressage").fill("Relais de la méthadone");
    await submit(page);
    result.bigPdf = await errorOf(page, "lettre-pdf");
    result.typeSortie = await errorOf(page, "type-sortie");
    step("usmp-medecin: complete");
    await page.getByLabel("Type de sortie").selectOption("fin-de-peine");
    await page.locator("#lettre-pdf").setInputFiles({ name: "lettre.pdf", mimeType: "application/pdf", buffer: Buffer.from("%PDF-1.4\n% lettre de liaison (fictive)\n%%EOF\n") });
    await page.getByLabel("Date du premier rendez-vous").fill(day(1));
    await page.getByLabel("Heure du rendez-vous").fill("10h30");
    await page.getByLabel("Lieu du rendez-vous").fill("CSAPA Les Tilleuls, 12 rue de l'Exemple, 75011 Paris");
    await submit(page);
    result.completed = { path: new URL(page.url()).pathname, text: await text(page) };
    await shot(page, "sortie-completer");
    await context.close();
  }

  // 4. The CSAPA référent: the new hand-off is in the inbox; the form is not for a CSAPA.
  {
    const { context, page } = await signIn("csapa-referent");
    await page.getByRole("heading", { name: "À prendre en charge" }).waitFor();
    result.inbox = await text(page);
    const refused = await page.goto(`${base}/portal/sorties/nouvelle`);
    result.csapaForm = { status: refused.status(), text: await text(page), forms: await page.locator("main form").count() };
    await context.close();
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  console.log(`PARTIAL ${JSON.stringify(result)}`);
  console.log(`FAILED ${String(e && e.message || e).split("\n")[0]}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
