// End to end through the exit portal (/portal/) in headless Chromium, one demo user after another, each in a fresh
// browser, driving the pages only by role and accessible name (the names issue 22 fixes). Prints what each user saw;
// the C# test (PortalBrowserTests) checks it and the effects through the API.
//
//   node portal.mjs --base http://127.0.0.1:5000 --ins <demo INS of the planned exit> [--shots ../../docs/portal]
//
// Last line of output: "RESULT {json}" or "FAILED <reason>"; exit code 0 only for RESULT.
import { parseArgs, launchBrowser, shooter, signIn as signInAt, step } from "./portal-common.mjs";

const args = parseArgs(["base", "ins"]);
const base = args.base;
const result = {};
const browser = await launchBrowser(args);
const shot = shooter(args);

/** A fresh browser for one user (portal-common.mjs); the first user's sign-in pages are photographed too. */
const signIn = (user, screenshots = false) => signInAt(browser, base, user, screenshots ? shot : null);

async function signOut(page) {
  await Promise.all([page.waitForURL(u => new URL(u).pathname === "/portal/"), page.getByRole("button", { name: "Se déconnecter" }).click()]);
}

const text = page => page.locator("main").innerText();

try {
  // 1. CSAPA Bastide: named by no live consent, sees no person at all.
  {
    const { context, page } = await signIn("csapa2-accueil");
    await page.getByRole("heading", { name: "À prendre en charge" }).waitFor();
    result.bastide = { path: new URL(page.url()).pathname, text: await text(page), rows: await page.locator("main tbody tr").count() };
    await context.close();
  }

  // 2. CSAPA Les Tilleuls: the hand-off of the planned exit, from Nouvelle to Terminée, appointment, attestation, ordonnance.
  {
    const { context, page } = await signIn("csapa-referent");
    await page.getByRole("heading", { name: "À prendre en charge" }).waitFor();
    await shot(page, "prises-en-charge");
    result.tilleulsInbox = { text: await text(page), rows: await page.locator("main tbody tr").count() };
    await Promise.all([page.waitForURL(/\/portal\/prises-en-charge\/[^/]+$/), page.getByRole("link", { name: /Voir la demande de Aubin/ }).click()]);
    const taskUrl = page.url();
    result.tilleulsTaskPath = new URL(taskUrl).pathname;
    await shot(page, "prise-en-charge");
    const statusAfter = async (button) => {
      step(`csapa-referent: ${button}`);
      await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: button, exact: true }).click()]);
      return (await page.locator("#statut").innerText()).trim();
    };
    result.tilleulsStatuses = [await statusAfter("Accepter"), await statusAfter("Commencer")];
    step("csapa-referent: Rendez-vous honoré");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Rendez-vous honoré" }).first().click()]);
    result.tilleulsAppointment = await page.locator("main .card").nth(1).innerText();
    step("csapa-referent: Émettre une attestation");
    await page.getByLabel(/La personne accepte/).first().check();
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Émettre une attestation" }).first().click()]);
    result.tilleulsAttestation = await page.getByRole("status").innerText();
    step("csapa-referent: Imprimer l'ordonnance");
    await Promise.all([page.waitForURL(/\/ordonnance\??$/), page.getByRole("button", { name: "Imprimer l'ordonnance" }).click()]);
    await page.emulateMedia({ media: "print" });
    await shot(page, "ordonnance");
    await page.emulateMedia({ media: "screen" });
    result.ordonnance = await text(page);
    await page.goto(taskUrl);
    await Promise.all([page.waitForURL(/\/lettre\??$/), page.getByRole("button", { name: "Lire la lettre de liaison" }).click()]);
    result.letter = await text(page);
    await page.goto(taskUrl);
    result.tilleulsStatuses.push(await statusAfter("Terminer"));
    await signOut(page);
    result.tilleulsSignedOut = await text(page);
    // The session is over: the inbox sends back to the front door.
    await page.goto(`${base}/portal/prises-en-charge`);
    result.tilleulsAfterSignOut = new URL(page.url()).pathname;
    await context.close();
  }

  // 3. ACT Horizon refuses its hand-off, with a reason.
  {
    const { context, page } = await signIn("act-coordination");
    await Promise.all([page.waitForURL(/\/portal\/prises-en-charge\/[^/]+$/), page.getByRole("link", { name: /Voir la demande/ }).first().click()]);
    result.actTaskPath = new URL(page.url()).pathname;
    await page.getByLabel(/Motif du refus/).fill("Plus de place disponible ce mois-ci");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Refuser" }).click()]);
    result.actStatus = (await page.locator("#statut").innerText()).trim();
    await context.close();
  }

  // 4. The SPIP counsellor: the person by exact identifier; appointment and attestation, nothing clinical.
  {
    const { context, page } = await signIn("spip-cpip");
    await page.getByLabel("Type d'identifiant").selectOption({ label: "INS de démonstration" });
    await page.getByLabel("Identifiant exact").fill(args.ins);
    await Promise.all([page.waitForURL(/\/portal\/spip\/[^/]+$/), page.getByRole("button", { name: "Rechercher" }).click()]);
    await shot(page, "spip");
    result.spip = { path: new URL(page.url()).pathname, text: await text(page), html: await page.content() };
    await context.close();
  }

  // 5. The DPO: the access report of the same person, filtered, and its CSV.
  {
    const { context, page } = await signIn("dpo");
    await page.getByRole("heading", { name: "Rapport d'accès" }).waitFor();
    await page.getByLabel("Type d'identifiant").selectOption({ label: "INS de démonstration" });
    await page.getByLabel("Identifiant exact").fill(args.ins);
    await Promise.all([page.waitForURL(/\/portal\/rapport-acces\/[^/]+$/), page.getByRole("button", { name: "Rechercher" }).click()]);
    await shot(page, "rapport-acces", false); // the first screen: the full report is long
    result.report = { path: new URL(page.url()).pathname, text: await text(page) };
    await page.getByLabel("Résultat").selectOption({ label: "Autorisé" });
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Filtrer" }).click()]);
    result.reportFilteredPath = new URL(page.url()).pathname + new URL(page.url()).search;
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Télécharger en CSV" }).click()]);
    const { readFile } = await import("node:fs/promises");
    result.csv = (await readFile(await download.path(), "utf8"));
    await context.close();
  }

  // 6. The USMP: the Sorties board.
  {
    const { context, page } = await signIn("usmp-medecin", true);
    await page.getByRole("heading", { name: "Sorties", exact: true }).waitFor();
    await shot(page, "sorties");
    result.sorties = { text: await text(page) };
    await context.close();
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  console.log(`FAILED ${String(e && e.message || e).split("\n")[0]}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
