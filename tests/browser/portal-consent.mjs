// The CSAPA référent's consent view (/portal/consentement) end to end in headless Chromium, driven by role and
// accessible name like portal.mjs. Two phases, so that the C# test (PortalConsentBrowserTests) can check the API between:
//
//   node portal-consent.mjs --base http://127.0.0.1:5000 --phase record [--shots DIR]
//     csapa-referent finds the collect-consent Task, records a consent naming CSAPA Bastide (identity and exit treatments,
//     addictions shared, mental health / HIV / violence masked), prints the sheet, uploads a too-large then a real signed
//     sheet; CSAPA Bastide's portal user cannot open that Task; ACT Horizon (no collect-consent Task, not the care team)
//     is refused by the gateway when it tries to record one for the person it receives.
//   node portal-consent.mjs --base http://127.0.0.1:5000 --phase withdraw --task <Task id> [--shots DIR]
//     csapa-referent withdraws the consent from the same page.
//
// Last line of output: "RESULT {json}" or "FAILED <reason>"; exit code 0 only for RESULT.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, launchBrowser, shooter, signIn as signInAt, step } from "./portal-common.mjs";

const args = parseArgs(["base", "phase"]);
const base = args.base;
const result = {};
let current = null; // the page in use, whose text a failure prints
const scratch = await mkdtemp(join(tmpdir(), "fhirsortie-portal-consent-"));
const browser = await launchBrowser(args);
const shot = shooter(args);

/** A fresh browser for one user (portal-common.mjs), remembered as the page a failure prints. */
async function signIn(user) {
  const signed = await signInAt(browser, base, user);
  current = signed.page;
  return signed;
}

const text = page => page.locator("main").innerText();
const click = async (page, name) => {
  step(`click ${name}`);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name, exact: true }).click()]);
};

/** The form's sensitive categories: addictions shared, the others masked. */
async function chooseCategories(page) {
  await page.getByLabel("Traitements de sortie", { exact: true }).check();
  await page.getByLabel("Partager : Addictions", { exact: true }).check();
  for (const label of ["Santé mentale", "VIH", "Violences sexuelles ou conjugales"]) await page.getByLabel(`Masquer : ${label}`, { exact: true }).check();
}

try {
  if (args.phase === "record") {
    // 1. The référent's list: the collect-consent Task of the person released without notice.
    const { context, page } = await signIn("csapa-referent");
    await Promise.all([page.waitForURL(/\/portal\/consentement$/), page.getByRole("link", { name: "Recueil du consentement" }).click()]);
    await page.getByRole("heading", { name: "Recueil du consentement" }).waitFor();
    await shot(page, "consentement-demandes");
    result.list = { text: await text(page), rows: await page.locator("main tbody tr").count() };
    await Promise.all([page.waitForURL(/\/portal\/consentement\/[^/]+$/), page.getByRole("link", { name: /Recueillir le consentement de Yanis ESSAI/ }).click()]);
    result.taskPath = new URL(page.url()).pathname;

    // 2. Saving with nothing chosen: the portal's own errors, next to the fields.
    await page.getByLabel("Traitements de sortie", { exact: true }).check();
    await click(page, "Enregistrer le consentement");
    result.emptyErrors = await page.locator("main .error").allInnerTexts();

    // 3. The recipient from the directory (by name), the categories, the period left as offered; then save.
    await page.getByLabel(/Rechercher dans l'annuaire/).fill("Bastide");
    await click(page, "Rechercher");
    await page.getByLabel(/CSAPA Bastide/).check();
    await chooseCategories(page);
    await shot(page, "consentement-formulaire");
    await click(page, "Enregistrer le consentement");
    result.saved = { notice: await page.getByRole("status").innerText(), status: (await page.locator("#statut").innerText()).trim(), text: await text(page) };
    await shot(page, "consentement-enregistre");

    // 4. The printable sheet.
    const consentPage = page.url().split("?")[0];
    await Promise.all([page.waitForURL(/\/fiche\/[^/?]+\??$/), page.getByRole("button", { name: "Imprimer la fiche de consentement" }).click()]);
    result.sheetPath = new URL(page.url()).pathname;
    await page.emulateMedia({ media: "print" });
    await shot(page, "consentement-fiche");
    await page.emulateMedia({ media: "screen" });
    result.sheet = await text(page);

    // 5. The signed sheet: a too-large file first (clear French error), then a small PDF.
    await page.goto(consentPage);
    const big = join(scratch, "fiche-trop-grande.pdf");
    await writeFile(big, Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(6 * 1024 * 1024, 0x20)]));
    await page.getByLabel(/Fiche signée/).setInputFiles(big);
    await click(page, "Joindre la fiche signée");
    result.tooLarge = await page.getByRole("alert").innerText();
    const pdf = join(scratch, "fiche-signee.pdf");
    await writeFile(pdf, "%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n");
    await page.getByLabel(/Fiche signée/).setInputFiles(pdf);
    await click(page, "Joindre la fiche signée");
    result.signed = { text: await text(page) };
    result.signed.notice = await page.getByRole("status").innerText();
    await context.close();

    // 6. CSAPA Bastide's user: the référent's Task is not its to open (it now sees the person's identity, not the Task).
    {
      const { context, page } = await signIn("csapa2-accueil");
      await page.goto(`${base}${result.taskPath}`);
      result.bastide = { title: await page.locator("h1").innerText(), text: await text(page) };
      await context.close();
    }

    // 7. ACT Horizon: no collect-consent Task and not the care team; the gateway refuses (403), said in French.
    {
      const { context, page } = await signIn("act-coordination");
      await Promise.all([page.waitForURL(/\/portal\/prises-en-charge\/[^/]+$/), page.getByRole("link", { name: /Voir la demande/ }).first().click()]);
      const taskId = new URL(page.url()).pathname.split("/").pop();
      await page.goto(`${base}/portal/consentement/${taskId}`);
      await page.getByLabel(/Rechercher dans l'annuaire/).fill("930000039");
      await click(page, "Rechercher");
      await page.getByLabel(/CSAPA Bastide/).check();
      await chooseCategories(page);
      await click(page, "Enregistrer le consentement");
      result.act = { taskId, refusal: await page.locator("#probleme").innerText() };
      await shot(page, "consentement-refus");
      await context.close();
    }
  } else if (args.phase === "withdraw") {
    if (!args.task) throw new Error("missing --task");
    const { context, page } = await signIn("csapa-referent");
    await page.goto(`${base}/portal/consentement/${args.task}`);
    await page.getByLabel("La personne demande le retrait de ce consentement").first().check();
    await click(page, "Retirer le consentement");
    result.withdrawn = { notice: await page.getByRole("status").innerText(), text: await text(page) };
    await shot(page, "consentement-retire");
    await context.close();
  } else throw new Error(`unknown phase ${args.phase}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  console.log(`partial: ${JSON.stringify(result).slice(0, 6000)}`);
  if (current) console.log(`page ${current.url()}: ${(await current.locator("main").innerText().catch(() => "")).slice(0, 3000)}`);
  console.log(`FAILED ${String(e && e.message || e).split("\n")[0]}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  await rm(scratch, { recursive: true, force: true });
}
