// A FHIR Bulk Data 2.0 client as a backend service runs one, against the real gateway (BulkClientTests):
// fhir-kit-client (npm) for discovery, the CapabilityStatement, the kick-off and the status polling; SMART Backend
// Services authentication with private_key_jwt (an RS384 client assertion signed with node:crypto); the NDJSON
// files downloaded with the access token (the manifest says requiresAccessToken), and once without it.
//   node bulk-export.mjs --iss <fhir base> --client-id <id> --key <pkcs8 pem file> --kid <key id>
//                        --scope "system/*.rs" --kickoff "Group/<id>/$export?_type=Patient,MedicationRequest"
// Prints one line "RESULT <json>" (what the client saw) and exits 0, or prints the error and exits 1.
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const required of ['iss', 'client-id', 'key', 'kid', 'scope', 'kickoff'])
  if (!args[required]) throw new Error(`--${required} is required`);

const base64url = (data) => Buffer.from(data).toString('base64url');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const client = new Client({ baseUrl: args.iss });

// Discovery (SMART App Launch 2.0 §Discovery): the token endpoint as fhir-kit-client finds it, and the whole document
// for what a backend service needs (the test checks it). fhir-kit-client gives URL objects.
const auth = await client.smartAuthMetadata();
const smart = await client.request('.well-known/smart-configuration', { options: { headers: { accept: 'application/json' } } });
if (!auth.tokenUrl || String(auth.tokenUrl) !== smart.token_endpoint) throw new Error(`token endpoint not discovered: ${JSON.stringify(auth)} ${JSON.stringify(smart)}`);

// SMART Backend Services: client_credentials with a signed JWT client assertion (RS384, aud = token URL, short exp, jti).
const now = Math.floor(Date.now() / 1000);
const header = { alg: 'RS384', typ: 'JWT', kid: args.kid };
const claims = { iss: args['client-id'], sub: args['client-id'], aud: smart.token_endpoint, exp: now + 300, jti: randomUUID() };
const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
const signature = sign('sha384', Buffer.from(signingInput), createPrivateKey(readFileSync(args.key, 'utf8')));
const assertion = `${signingInput}.${base64url(signature)}`;
const tokenResponse = await fetch(smart.token_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
  body: new URLSearchParams({
    grant_type: 'client_credentials',
    scope: args.scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  }),
});
const token = await tokenResponse.json();
if (!tokenResponse.ok) throw new Error(`token endpoint answered ${tokenResponse.status}: ${JSON.stringify(token)}`);
client.bearerToken = token.access_token;

const capabilities = await client.capabilityStatement();

// Kick-off (Bulk Data 2.0 §Bulk Data Kick-off Request): Prefer: respond-async, Accept: application/fhir+json.
const kickoff = await client.request(args.kickoff, { options: { headers: { prefer: 'respond-async', accept: 'application/fhir+json' } } });
const kicked = Client.httpFor(kickoff).response;
if (kicked.status !== 202) throw new Error(`kick-off answered ${kicked.status}`);
const statusUrl = kicked.headers.get('content-location');
if (!statusUrl) throw new Error('kick-off answered 202 without Content-Location');

// Status polling (§Bulk Data Status Request): 202 with X-Progress while it runs, honouring Retry-After; 200 with the manifest.
const progress = [];
let manifest;
const deadline = Date.now() + 120_000;
for (;;) {
  const answer = await client.request(statusUrl);
  const response = Client.httpFor(answer).response;
  if (response.status === 200) {
    manifest = answer;
    break;
  }
  if (response.status !== 202) throw new Error(`status answered ${response.status}`);
  progress.push(response.headers.get('x-progress'));
  if (Date.now() > deadline) throw new Error('the export did not complete in time');
  const retryAfter = Number(response.headers.get('retry-after') ?? '1');
  await sleep(Math.min(Math.max(retryAfter, 0.2), 5) * 1000);
}

// Output files (§File Request): with the token when requiresAccessToken is true; each line one resource.
const files = [];
for (const output of manifest.output) {
  const response = await fetch(output.url, {
    headers: { accept: 'application/fhir+ndjson', ...(manifest.requiresAccessToken ? { authorization: `Bearer ${token.access_token}` } : {}) },
  });
  if (response.status !== 200) throw new Error(`file ${output.url} answered ${response.status}`);
  const lines = (await response.text()).split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
  files.push({
    type: output.type, url: output.url, count: output.count, contentType: response.headers.get('content-type'),
    resources: lines.map((r) => ({ resourceType: r.resourceType, id: r.id })),
  });
}
const withoutToken = manifest.output.length > 0 ? (await fetch(manifest.output[0].url)).status : null;

console.log('RESULT ' + JSON.stringify({
  smart, tokenType: token.token_type, scope: token.scope, instantiates: capabilities.instantiates ?? [],
  statusUrl, progress, manifest, files, withoutToken,
}));
