// What the portal's browser scripts (portal.mjs, portal-consent.mjs, portal-package.mjs) share: their arguments, one
// headless Debian Chromium, screenshots, and a user's sign-in through the portal's front door and the gateway's login
// page, found by their French accessible names (issue 22).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const step = message => console.log(`step: ${message}`);

/** `--name value` pairs; prints FAILED and exits 2 when a required one is missing. `base` loses its trailing slash. */
export function parseArgs(required) {
  const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) =>
    arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs, []));
  for (const name of required) if (!args[name]) { console.log(`FAILED missing --${name}`); process.exit(2); }
  args.base = args.base.replace(/\/$/, "");
  return args;
}

export async function launchBrowser(args) {
  if (args.shots) await mkdir(args.shots, { recursive: true });
  return await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A screenshot into --shots, when given (the README's pictures, or a temp folder). */
export const shooter = args => async (page, name, fullPage = true) => {
  if (args.shots) await page.screenshot({ path: join(args.shots, `${name}.png`), fullPage });
};

/**
 * A fresh browser context for one user, signed in through /portal/ and the gateway's French login page (lang="fr",
 * Identifiant, Mot de passe, Se connecter). With `shot`, the front door and the login page are photographed.
 */
export async function signIn(browser, base, user, shot = null) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: "fr-FR", timezoneId: "Europe/Paris", acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", e => console.log(`browser page error: ${e.message}`));
  page.on("console", m => { if (m.type() === "error") console.log(`browser console: ${m.text()}`); });
  step(`${user}: front door`);
  await page.goto(`${base}/portal/`);
  if (shot) await shot(page, "accueil");
  await Promise.all([page.waitForURL(u => new URL(u).pathname === "/auth/login"), page.getByRole("button", { name: "Se connecter" }).click()]);
  if (shot) await shot(page, "connexion");
  await page.locator("html[lang=fr]").waitFor();
  await page.getByLabel("Identifiant").fill(user);
  await page.getByLabel("Mot de passe").fill(`${user}-password`);
  await Promise.all([page.waitForURL(u => new URL(u).pathname.startsWith("/portal/") && new URL(u).pathname !== "/portal/callback"),
    page.getByRole("button", { name: "Se connecter", exact: true }).click()]);
  return { context, page };
}
