// End-to-end SMART App Launch with a client nobody here wrote: SMART's JavaScript library (fhirclient) in headless
// Chromium. Serves the tiny app in ./app on 127.0.0.1, opens launch.html with the gateway's iss, signs in on the
// gateway's login page, picks the patient in its patient picker, and prints what the app's page shows.
//
//   node run.mjs --app-port 43123 --iss http://127.0.0.1:5000/fhir --user dr-demo --password dr-demo-password \
//                --search Dupont --patient <id> [--launch <value>] [--client-id smart-demo-app]
//
// Last line of output: "RESULT {json}" (what the app printed) or "FAILED <reason>"; exit code 0 only for RESULT.
import { createServer } from "node:http";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) =>
  arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs, []));
const required = ["app-port", "iss", "user", "password", "patient"];
for (const name of required) if (!args[name]) { console.log(`FAILED missing --${name}`); process.exit(2); }
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const files = {
  "/launch.html": [join(here, "app", "launch.html"), "text/html; charset=utf-8"],
  "/index.html": [join(here, "app", "index.html"), "text/html; charset=utf-8"],
  "/fhir-client.js": [join(here, "node_modules", "fhirclient", "build", "fhir-client.js"), "text/javascript; charset=utf-8"],
};
const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://127.0.0.1").pathname;
  const file = files[path];
  if (!file) { res.writeHead(404).end(); return; }
  res.writeHead(200, { "Content-Type": file[1], "Cache-Control": "no-store" }).end(await readFile(file[0]));
});
await new Promise((resolve, reject) => server.listen(Number(args["app-port"]), "127.0.0.1", resolve).on("error", reject));

const userDataDir = await mkdtemp(join(tmpdir(), "fhirsortie-chromium-"));
let context;
const step = message => console.log(`step: ${message}`);
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on("console", m => console.log(`browser console ${m.type()}: ${m.text()}`));
  page.on("pageerror", e => console.log(`browser page error: ${e.message}`));

  const launchUrl = new URL(`http://127.0.0.1:${args["app-port"]}/launch.html`);
  launchUrl.searchParams.set("iss", args.iss);
  if (args.launch) launchUrl.searchParams.set("launch", args.launch);
  if (args["client-id"]) launchUrl.searchParams.set("client_id", args["client-id"]);
  if (args.scope) launchUrl.searchParams.set("scope", args.scope);
  step(`open ${launchUrl.pathname}`);
  await page.goto(launchUrl.toString());

  // Either the gateway's login page (or straight back to the app), or fhirclient reports an error on launch.html.
  await page.waitForFunction(() => location.pathname !== "/launch.html"
    || (document.getElementById("status")?.textContent ?? "").startsWith("ERROR"));
  if (new URL(page.url()).pathname === "/launch.html") throw new Error(await page.textContent("#status"));
  if (new URL(page.url()).pathname === "/auth/login") {
    step("login page");
    await page.fill("#username", args.user);
    await page.fill("#password", args.password);
    await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
  }
  const afterLogin = new URL(page.url());
  if (afterLogin.pathname === "/auth/pick-patient") {
    step("patient picker");
    if (args.search) {
      await page.fill("#q", args.search);
      await Promise.all([page.waitForNavigation(), page.click("#search")]);
    }
    await Promise.all([page.waitForNavigation(), page.click(`button.pick[data-patient="${args.patient}"]`)]);
  }
  step("back in the app");
  await page.waitForSelector("body[data-done]");
  const status = await page.getAttribute("body", "data-done");
  const text = await page.textContent("#result");
  if (status === "PATIENT") console.log(`RESULT ${text}`);
  else { console.log(`FAILED the app says: ${text} (at ${page.url()})`); process.exitCode = 1; }
} catch (e) {
  console.log(`FAILED ${String(e && e.message || e).split("\n")[0]}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  server.close();
  await rm(userDataDir, { recursive: true, force: true });
}
