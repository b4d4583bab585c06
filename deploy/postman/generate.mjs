#!/usr/bin/env node
// Generates the Postman collection from the gateway's OpenAPI document:
//
//   node deploy/postman/generate.mjs [OPENAPI] [OUTPUT]
//
// OPENAPI is a file or an http(s) URL (default http://127.0.0.1:8080/openapi.json,
// the local stack); OUTPUT defaults to partner-callbacks.postman_collection.json
// beside this script ("-" prints it). The packages come from the node_modules
// of PARTNER_CALLBACKS_POSTMAN_MODULES when set (deploy/newman.sh sets it),
// else from deploy/postman/node_modules (`npm ci` here).
//
// openapi-to-postmanv2 converts the document: every operation becomes a
// request, with its documented parameters, headers, body and example
// answers. This script then arranges those requests so that a run works top
// to bottom (PLAN below), fills in their path parameters, queries and
// bodies, and adds to each a test of the status it expects, checked against
// the statuses the document lists for that operation, and of the body
// against the document's schema for that status. Generation fails when an
// operation of the document has no step in PLAN with a 2xx it documents, or
// when a step expects a status its operation does not document: the
// collection cannot fall behind the document unnoticed.
//
// The output is deterministic (a fixed clock and seed for the converter's
// example faker, ids derived from names), so deploy/newman.sh can insist
// that the committed file equals a fresh generation.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = process.argv[2] || 'http://127.0.0.1:8080/openapi.json';
const output = process.argv[3] || path.join(here, 'partner-callbacks.postman_collection.json');
const modules = process.env.PARTNER_CALLBACKS_POSTMAN_MODULES || path.join(here, 'node_modules');

// ---------------------------------------------------------------------------
// The converter, made deterministic: its example faker draws from
// Math.random and dates around "now", both read when it is loaded.

let seed = 0x5eed;
Math.random = () => {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const RealDate = Date;
const FIXED_NOW = RealDate.UTC(2026, 0, 1);
globalThis.Date = class extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(FIXED_NOW);
    else super(...args);
  }
  static now() {
    return FIXED_NOW;
  }
};
const require = createRequire(path.join(modules, 'noop.js'));
const Converter = require('openapi-to-postmanv2');

async function readSource(where) {
  if (/^https?:\/\//.test(where)) {
    const response = await fetch(where);
    if (!response.ok) throw new Error(`GET ${where}: ${response.status}`);
    return response.text();
  }
  return fs.readFileSync(where, 'utf8');
}

function convert(text) {
  return new Promise((resolve, reject) => {
    Converter.convert(
      { type: 'string', data: text },
      {
        folderStrategy: 'Tags',
        parametersResolution: 'Example',
        alwaysInheritAuthentication: true,
        includeAuthInfoInExample: false,
        enableOptionalParameters: false,
      },
      (error, result) => {
        if (error) return reject(error);
        if (!result.result) return reject(new Error(`openapi-to-postmanv2: ${result.reason}`));
        resolve(result.output[0].data);
      },
    );
  });
}

// ---------------------------------------------------------------------------
// Helpers for the plan.

// A JSON body; "{{#name}}" becomes the variable unquoted (a number).
const json = (value) => JSON.stringify(value, null, 2).replace(/"\{\{#(\w+)\}\}"/g, '{{$1}}');
const bearer = (token) => ({ type: 'bearer', bearer: [{ key: 'token', value: token, type: 'string' }] });
const NO_AUTH = { type: 'noauth' };
const INVALID = { type: '/problems/invalid-request', title: 'Invalid request' };
const UNAUTHORIZED = { type: '/problems/unauthorized', title: 'Unauthorized' };
const FORBIDDEN = { type: '/problems/forbidden', title: 'Forbidden' };
const NOT_FOUND = { type: '/problems/not-found', title: 'Not found' };
const UNSUPPORTED = { type: '/problems/unsupported-media-type', title: 'Unsupported media type' };
const SEEDED_RULE = 'Exactly one of processUniqueId and simulationUniqueId';
const set = (name, expression) => `pm.collectionVariables.set(${JSON.stringify(name)}, ${expression});`;

const CALLBACK = '/{partnerUniqueID}/callbacks/{notificationType}';
const ECHO = 'POST /v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}';
const OWN_TYPE = { partnerUniqueID: '{{partnerId}}', notificationType: '{{notificationType}}' };
const OWN_ECHO = { partnerUniqueID: '{{partnerId}}', notificationTypeID: '{{notificationType}}' };
const REGISTRATION_BODY = json({
  callBackUrl: '{{callbackUrl}}',
  merchantId: 'postman-check',
  retryPolicy: { name: 'custom', scheduleSeconds: [1] },
});

// A script line that stops a request whose variables are not filled in
// (empty, or the environment's "<…>" placeholders).
const REQUIRE_VARIABLES = `(function (names) {
  names.forEach(function (name) {
    const value = pm.variables.get(name);
    if (!value || /^</.test(value)) throw new Error('set the variable ' + name + ' (deploy/postman/README.md)');
  });
})`;

// An echo that the echo rule refuses with 400.
const echoRefused = (name, { path: params = OWN_ECHO, body, param, detail, note }) => ({
  op: ECHO,
  name,
  note,
  expect: [400],
  path: params,
  body,
  problem: { ...INVALID, param, detail },
});

// ---------------------------------------------------------------------------
// The plan: folders of steps, run top to bottom. Each step is one request
// of an operation ("METHOD /path" as the document spells it).

const PLAN = [
  {
    folder: '1 Health',
    description: 'Liveness, readiness, the OpenAPI document and the metrics: no key needed.',
    auth: NO_AUTH,
    steps: [
      { op: 'GET /healthz', expect: [200] },
      { op: 'GET /readyz', expect: [200] },
      {
        op: 'GET /openapi.json',
        expect: [200],
        test: `pm.test('it is an OpenAPI 3.1 document', function () {
  pm.expect(pm.response.json().openapi).to.match(/^3\\.1\\./);
});`,
      },
      {
        op: 'GET /metrics',
        expect: [200],
        test: `pm.test('it is the Prometheus text format', function () {
  pm.expect(pm.response.text()).to.include('# TYPE ');
});`,
      },
    ],
  },
  {
    folder: '2 Callbacks: register, read, rotate the secret',
    description:
      "Registers {{callbackUrl}} for {{notificationType}} (the local stack lets callbacks point at 127.0.0.0/8 over http; nothing needs to answer there) with a custom retry policy of one retry after 1 s, so that a test notification's delivery fails for good within seconds and can be redelivered.",
    steps: [
      {
        op: 'GET /v1/callbacks/notification-types',
        expect: [200],
        test: `const types = pm.response.json().results;
const own = types.find((t) => String(t.notificationTypeId) === pm.variables.get('notificationType'));
pm.test('the catalogue has notificationType, echo-able', function () {
  pm.expect(own, 'type ' + pm.variables.get('notificationType')).to.be.an('object');
  pm.expect(own.echoable).to.equal(true);
});
const notEchoable = types.find((t) => !t.echoable);
pm.test('the catalogue has a type that is not echo-able (for the echo refusals)', function () {
  pm.expect(notEchoable).to.be.an('object');
});
if (notEchoable) ${set('notEchoableType', 'String(notEchoable.notificationTypeId)')}`,
      },
      {
        op: `DELETE ${CALLBACK}`,
        name: 'Start clean: delete a registration an earlier run left (204, or 404 when none)',
        expect: [204, 404],
        path: OWN_TYPE,
      },
      {
        op: `PUT ${CALLBACK}`,
        name: 'Register the callback (201)',
        expect: [201],
        path: OWN_TYPE,
        body: REGISTRATION_BODY,
        test: `const registration = pm.response.json();
${set('registrationId', 'registration.registrationId')}
pm.test('it is the registration asked for', function () {
  pm.expect(registration.callBackUrl).to.equal(pm.variables.get('callbackUrl'));
  pm.expect(registration.merchantId).to.equal('postman-check');
  pm.expect(registration.retryPolicy).to.eql({ name: 'custom', scheduleSeconds: [1] });
  pm.expect(registration.isActive).to.equal(true);
  pm.expect(registration.hasPassword).to.equal(false);
});`,
      },
      {
        op: `PUT ${CALLBACK}`,
        name: 'Register it again: an update (200)',
        expect: [200],
        path: OWN_TYPE,
        body: REGISTRATION_BODY,
        test: `pm.test('the same registration', function () {
  pm.expect(pm.response.json().registrationId).to.equal(pm.variables.get('registrationId'));
});`,
      },
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        expect: [200],
        path: { partnerUniqueID: '{{partnerId}}' },
        query: { isActive: 'true', merchantId: 'postman-check', pageNumber: '1', pageSize: '100' },
        test: `pm.test('the list has the registration', function () {
  const ids = pm.response.json().results.map((r) => r.registrationId);
  pm.expect(ids).to.include(pm.variables.get('registrationId'));
});`,
      },
      {
        op: `GET ${CALLBACK}`,
        expect: [200],
        path: OWN_TYPE,
        test: `pm.test('the registration', function () {
  pm.expect(pm.response.json().registrationId).to.equal(pm.variables.get('registrationId'));
});`,
      },
      {
        op: 'GET /v1/callbacks/registrations/{registrationId}',
        expect: [200],
        path: { registrationId: '{{registrationId}}' },
        test: `pm.test('the registration', function () {
  pm.expect(pm.response.json().notificationType).to.equal(Number(pm.variables.get('notificationType')));
});`,
      },
      {
        op: `GET ${CALLBACK}/secret`,
        expect: [200],
        path: OWN_TYPE,
        test: `const secret = pm.response.json();
pm.test('an hmac-sha256 whsec_ secret', function () {
  pm.expect(secret.scheme).to.equal('hmac-sha256');
  pm.expect(secret.secret).to.match(/^whsec_/);
});
${set('secret', 'secret.secret')}`,
      },
      {
        op: `POST ${CALLBACK}/secret/rotate`,
        name: 'Rotate the signing key, the old one expiring at once',
        expect: [200],
        path: OWN_TYPE,
        body: json({ previousExpiresInSeconds: 0 }),
        test: `pm.test('a new secret', function () {
  const rotated = pm.response.json();
  pm.expect(rotated.secret).to.match(/^whsec_/);
  pm.expect(rotated.secret).to.not.equal(pm.variables.get('secret'));
});`,
      },
    ],
  },
  {
    folder: '3 Echo, deliveries, recovery, erasure',
    steps: [
      {
        op: ECHO,
        name: 'Fire a test notification (202)',
        expect: [202],
        path: OWN_ECHO,
        body: json({ processUniqueId: 'postman-{{$guid}}', status: 'completed' }),
        test: `const accepted = pm.response.json();
${set('deliveryId', 'accepted.deliveryId')}
pm.test('deliveryUrl is where the delivery is read', function () {
  pm.expect(accepted.deliveryUrl).to.equal('/v1/callbacks/deliveries/' + accepted.deliveryId);
});`,
      },
      {
        op: `GET ${CALLBACK}/deliveries`,
        expect: [200],
        path: OWN_TYPE,
        query: { pageNumber: '1', pageSize: '100' },
        test: `pm.test('the list has the test notification', function () {
  const found = pm.response.json().results.find((d) => d.deliveryId === pm.variables.get('deliveryId'));
  pm.expect(found).to.be.an('object');
  pm.expect(found.isTest).to.equal(true);
});`,
      },
      {
        op: 'GET /v1/callbacks/deliveries/{deliveryId}',
        expect: [200],
        path: { deliveryId: '{{deliveryId}}' },
        test: `const delivery = pm.response.json();
${set('eventId', 'delivery.eventId')}
pm.test('the test notification, of this partner and type', function () {
  pm.expect(delivery.isTest).to.equal(true);
  pm.expect(delivery.partnerUniqueId).to.equal(pm.variables.get('partnerId'));
  pm.expect(delivery.notificationType).to.equal(Number(pm.variables.get('notificationType')));
});`,
      },
      {
        op: 'POST /v1/callbacks/deliveries/{deliveryId}/redeliver',
        name: 'Redeliver it, once it is no longer pending (202)',
        expect: [202],
        path: { deliveryId: '{{deliveryId}}' },
        pre: `// A pending delivery cannot be redelivered (409): wait, up to 60 s, for
// its attempts to end. {{callbackUrl}} refuses, and the registration's
// policy retries once, after 1 s.
const deadline = Date.now() + 60000;
const url = pm.variables.replaceIn('{{baseUrl}}/v1/callbacks/deliveries/{{deliveryId}}');
const poll = function () {
  pm.sendRequest({ url: url, method: 'GET', header: { Authorization: 'Bearer ' + pm.variables.get('apiKey') } }, function (error, response) {
    const status = !error && response.code === 200 ? response.json().status : 'unknown';
    if (status === 'pending' && Date.now() < deadline) return setTimeout(poll, 500);
    ${set('statusBeforeRedelivery', 'status')}
  });
};
poll();`,
        test: `pm.test('it was no longer pending (' + pm.variables.get('statusBeforeRedelivery') + ') and is pending again', function () {
  pm.expect(pm.variables.get('statusBeforeRedelivery')).to.be.oneOf(['delivered', 'failed', 'cancelled']);
  pm.expect(pm.response.json().status).to.equal('pending');
});`,
      },
      {
        op: 'POST /v1/callbacks/recoveries/{partnerUniqueID}',
        name: 'Recover failed deliveries: a dry run (200)',
        expect: [200],
        path: { partnerUniqueID: '{{partnerId}}' },
        pre: `${set('recoverSince', 'new Date(Date.now() - 3600000).toISOString()')}
${set('recoverUntil', 'new Date(Date.now() + 60000).toISOString()')}`,
        body: json({
          dryRun: true,
          notificationType: '{{#notificationType}}',
          since: '{{recoverSince}}',
          until: '{{recoverUntil}}',
        }),
        test: `pm.test('a plan', function () {
  pm.expect(pm.response.json().state).to.equal('planned');
});`,
      },
      {
        op: 'POST /v1/callbacks/recoveries/{partnerUniqueID}',
        name: 'Recover failed deliveries: the job (202)',
        expect: [202],
        path: { partnerUniqueID: '{{partnerId}}' },
        body: json({
          notificationType: '{{#notificationType}}',
          since: '{{recoverSince}}',
          until: '{{recoverUntil}}',
        }),
        test: `const recovery = pm.response.json();
${set('recoveryId', 'recovery.recoveryId')}
pm.test('a job, with where to read its progress', function () {
  pm.expect(recovery.recoveryId).to.be.a('string');
  pm.expect(recovery.statusUrl).to.include(recovery.recoveryId);
});`,
      },
      {
        op: 'GET /v1/callbacks/recoveries/{partnerUniqueID}/{recoveryId}',
        expect: [200],
        path: { partnerUniqueID: '{{partnerId}}', recoveryId: '{{recoveryId}}' },
        test: `pm.test('the job', function () {
  pm.expect(pm.response.json().recoveryId).to.equal(pm.variables.get('recoveryId'));
});`,
      },
      {
        op: 'DELETE /v1/callbacks/events/{eventId}/payload',
        expect: [200],
        path: { eventId: '{{eventId}}' },
      },
      {
        op: 'DELETE /v1/callbacks/payloads/{partnerUniqueID}',
        name: "Erase all of the partner's payloads",
        expect: [200],
        path: { partnerUniqueID: '{{partnerId}}' },
      },
    ],
  },
  {
    folder: '4 Pause and resume',
    steps: [
      {
        op: `POST ${CALLBACK}/pause`,
        expect: [200],
        path: OWN_TYPE,
        body: json({ reason: 'paused by the Postman collection' }),
        test: `pm.test('paused, with the reason', function () {
  const registration = pm.response.json();
  pm.expect(registration.pausedAt).to.be.a('string');
  pm.expect(registration.pauseReason).to.equal('paused by the Postman collection');
});`,
      },
      {
        op: `POST ${CALLBACK}/resume`,
        expect: [200],
        path: OWN_TYPE,
        test: `pm.test('no longer paused', function () {
  pm.expect(pm.response.json().pausedAt == null).to.equal(true);
});`,
      },
    ],
  },
  {
    folder: '5 Echo refusals',
    description:
      "What the echo route refuses with 400 (gateway/src/routes/echo.rs, gateway/tests/it/echo.rs), in the order it checks: the path, the body's JSON, the type in the catalogue, then the type's payload schema (for the seeded types 5, 6 and 7: exactly one of processUniqueId and simulationUniqueId). Then its other refusals: 401, 403 and 415 (the 404 of a type without an active registration is in the last folder).",
    steps: [
      echoRefused('400: partnerUniqueID is not a GUID', {
        path: { partnerUniqueID: 'not-a-guid', notificationTypeID: '{{notificationType}}' },
        body: json({ processUniqueId: 'p-1' }),
        param: ['partnerUniqueID', 'must be a GUID'],
      }),
      echoRefused('400: notificationTypeID is not an integer', {
        path: { partnerUniqueID: '{{partnerId}}', notificationTypeID: 'five' },
        body: json({ processUniqueId: 'p-1' }),
        param: ['notificationTypeID', 'must be a positive integer'],
      }),
      echoRefused('400: notificationTypeID is not positive', {
        path: { partnerUniqueID: '{{partnerId}}', notificationTypeID: '0' },
        body: json({ processUniqueId: 'p-1' }),
        param: ['notificationTypeID', 'must be a positive integer'],
      }),
      echoRefused('400: the body is not JSON', {
        body: '{oops',
        detail: 'the body is not valid JSON',
      }),
      echoRefused('400: the body is empty', {
        body: '',
        detail: 'the body is not valid JSON',
      }),
      echoRefused('400: a type outside the catalogue', {
        path: { partnerUniqueID: '{{partnerId}}', notificationTypeID: '2147483647' },
        body: json({ processUniqueId: 'p-1' }),
        param: ['notificationTypeID', 'is not a supported notification type'],
      }),
      echoRefused('400: a type that is not echo-able', {
        path: { partnerUniqueID: '{{partnerId}}', notificationTypeID: '{{notEchoableType}}' },
        body: json({ processUniqueId: 'p-1' }),
        param: ['notificationTypeID', 'cannot be echoed'],
        note: 'The type is the catalogue\'s first that is not echo-able (the seeded 900, callback.health).',
      }),
      echoRefused("400: the payload schema: both ids", {
        body: json({ processUniqueId: 'p-1', simulationUniqueId: 's-1' }),
        param: ['rawBody', SEEDED_RULE],
      }),
      echoRefused("400: the payload schema: neither id", {
        body: json({ amount: 10 }),
        param: ['rawBody', SEEDED_RULE],
      }),
      echoRefused("400: the payload schema: a null id is no id", {
        body: json({ processUniqueId: null }),
        param: ['rawBody', SEEDED_RULE],
      }),
      echoRefused("400: the payload schema: not an object", {
        body: '[1,2,3]',
        param: ['rawBody', SEEDED_RULE],
      }),
      {
        op: ECHO,
        name: '401: a key that is not valid',
        expect: [401],
        path: OWN_ECHO,
        auth: bearer('{{invalidKey}}'),
        body: json({ processUniqueId: 'p-1' }),
        problem: UNAUTHORIZED,
      },
      {
        op: ECHO,
        name: "403: another partner's id",
        expect: [403],
        path: { partnerUniqueID: '{{otherPartnerId}}', notificationTypeID: '{{notificationType}}' },
        body: json({ processUniqueId: 'p-1' }),
        problem: FORBIDDEN,
      },
      {
        op: ECHO,
        name: '415: not sent as JSON',
        expect: [415],
        path: OWN_ECHO,
        contentType: 'text/plain',
        body: json({ processUniqueId: 'p-1' }),
        problem: UNSUPPORTED,
      },
    ],
  },
  {
    folder: '6 Keys',
    description: 'Requests with a missing or invalid key are refused with 401 and a WWW-Authenticate challenge.',
    steps: [
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        name: '401: a key that is not valid',
        expect: [401],
        path: { partnerUniqueID: '{{partnerId}}' },
        auth: bearer('{{invalidKey}}'),
        problem: UNAUTHORIZED,
      },
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        name: '401: no key',
        expect: [401],
        path: { partnerUniqueID: '{{partnerId}}' },
        auth: NO_AUTH,
        problem: UNAUTHORIZED,
      },
    ],
  },
  {
    folder: '7 Delete the callback',
    steps: [
      {
        op: `DELETE ${CALLBACK}`,
        expect: [204],
        path: OWN_TYPE,
      },
      {
        op: `GET ${CALLBACK}`,
        name: '404: no active registration any more',
        expect: [404],
        path: OWN_TYPE,
        problem: NOT_FOUND,
      },
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        name: 'The deleted registration, deactivated',
        expect: [200],
        path: { partnerUniqueID: '{{partnerId}}' },
        query: { isActive: 'false', registrationId: '{{registrationId}}' },
        test: `pm.test('deactivated', function () {
  const results = pm.response.json().results;
  pm.expect(results).to.have.lengthOf(1);
  pm.expect(results[0].isActive).to.equal(false);
});`,
      },
      {
        op: ECHO,
        name: '404: an echo without an active registration',
        expect: [404],
        path: OWN_ECHO,
        body: json({ processUniqueId: 'p-1' }),
        problem: NOT_FOUND,
      },
    ],
  },
  {
    folder: '8 Operators',
    description:
      "The operators' routes, with the admin key ({{adminKey}}; deploy/newman.sh runs this folder only when it is given). Adds a notification type (with an id drawn at random: types cannot be removed) and a partner, and issues and revokes a key.",
    auth: bearer('{{adminKey}}'),
    pre: `${REQUIRE_VARIABLES}(['adminKey']);`,
    steps: [
      { op: 'GET /v1/admin/notification-types', expect: [200] },
      {
        op: 'POST /v1/admin/notification-types',
        expect: [201],
        pre: set('newTypeId', 'String(100000 + Math.floor(Math.random() * 2000000000))'),
        body: json({
          notificationTypeId: '{{#newTypeId}}',
          name: 'postman.check-{{newTypeId}}',
          description: 'Added by the Postman collection',
          echoable: true,
        }),
      },
      {
        op: 'PUT /v1/admin/notification-types/{notificationTypeId}/payload-schema',
        expect: [200],
        path: { notificationTypeId: '{{newTypeId}}' },
        body: json({ type: 'object', required: ['orderId'] }),
        test: `pm.test('the schema is set', function () {
  pm.expect(pm.response.json().payloadSchema).to.eql({ type: 'object', required: ['orderId'] });
});`,
      },
      {
        op: 'DELETE /v1/admin/notification-types/{notificationTypeId}/payload-schema',
        expect: [200],
        path: { notificationTypeId: '{{newTypeId}}' },
        test: `pm.test('the schema is gone', function () {
  pm.expect(pm.response.json().payloadSchema == null).to.equal(true);
});`,
      },
      {
        op: 'POST /v1/admin/partners',
        expect: [201],
        body: json({ name: 'Postman check', keyLabel: 'postman' }),
        test: `const created = pm.response.json();
${set('newPartnerId', 'created.partner.partnerUniqueId')}
pm.test('a pcb_ token, shown once', function () {
  pm.expect(created.apiKey.token).to.match(/^pcb_/);
});`,
      },
      {
        op: 'GET /v1/admin/partners',
        expect: [200],
        query: { pageNumber: '1', pageSize: '100' },
      },
      {
        op: 'GET /v1/admin/partners/{partnerUniqueID}',
        expect: [200],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        test: `pm.test('the partner', function () {
  pm.expect(pm.response.json().name).to.equal('Postman check');
});`,
      },
      {
        op: 'POST /v1/admin/partners/{partnerUniqueID}/keys',
        expect: [201],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        body: json({ label: 'postman second key' }),
        test: `const issued = pm.response.json();
${set('newKeyId', 'issued.keyId')}
${set('newKeyToken', 'issued.token')}`,
      },
      {
        op: 'GET /v1/admin/partners/{partnerUniqueID}/keys',
        expect: [200],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        test: `pm.test('both keys', function () {
  pm.expect(pm.response.json().results.map((k) => k.keyId)).to.include(pm.variables.get('newKeyId'));
});`,
      },
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        name: 'The new key works',
        expect: [200],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        auth: bearer('{{newKeyToken}}'),
      },
      {
        op: 'DELETE /v1/admin/partners/{partnerUniqueID}/keys/{keyId}',
        expect: [200],
        path: { partnerUniqueID: '{{newPartnerId}}', keyId: '{{newKeyId}}' },
        test: `pm.test('revoked', function () {
  pm.expect(pm.response.json().revokedAt).to.be.a('string');
});`,
      },
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        name: '401: the revoked key, refused at once',
        expect: [401],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        auth: bearer('{{newKeyToken}}'),
        problem: UNAUTHORIZED,
      },
    ],
  },
];

// Variables: what a run needs (the environment overrides them), then what
// the requests pass on to each other.
const VARIABLES = [
  ['baseUrl', 'http://127.0.0.1:8080', "The gateway"],
  ['partnerId', '', "The partner's unique id (run-local.sh prints it as PARTNER=)"],
  ['apiKey', '', "The partner's API key (run-local.sh prints it as KEY=)"],
  ['adminKey', '', "The operators' key, for folder 8 (run-local.sh prints it as 'admin key')"],
  ['notificationType', '7', 'An echo-able type the collection registers, and deletes at the end'],
  ['callbackUrl', 'http://127.0.0.1:9/hook', 'Where the registration points: deliveries there fail, which the checks need'],
  ['otherPartnerId', '00000000-0000-4000-8000-000000000000', "A partner id that is not the key's"],
  ['invalidKey', 'pcb_not-a-valid-key', 'A key the gateway does not know'],
  ...[
    'notEchoableType', 'registrationId', 'secret', 'deliveryId', 'eventId', 'statusBeforeRedelivery',
    'recoverSince', 'recoverUntil', 'recoveryId', 'newTypeId', 'newPartnerId', 'newKeyId', 'newKeyToken',
  ].map((name) => [name, '', 'Set by the requests']),
];

// ---------------------------------------------------------------------------
// The document's side: operations, documented answers, schemas.

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
// The formats Ajv 6 (the Postman sandbox's jsonSchema) knows; others are
// declared to it as unknown-but-fine.
const AJV_FORMATS = new Set([
  'date', 'time', 'date-time', 'uri', 'uri-reference', 'uri-template', 'url', 'email', 'hostname',
  'ipv4', 'ipv6', 'regex', 'uuid', 'json-pointer', 'json-pointer-uri-fragment', 'relative-json-pointer',
]);

function operations(spec) {
  const found = new Map();
  for (const [route, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      if (item[method]) found.set(`${method.toUpperCase()} ${route}`, item[method]);
    }
  }
  return found;
}

function refName(ref) {
  const prefix = '#/components/schemas/';
  if (!ref.startsWith(prefix)) throw new Error(`unsupported $ref ${ref}`);
  return ref.slice(prefix.length);
}

// `schema` without its annotations (descriptions, examples, deprecation),
// which validation ignores: what the tests embed.
const ANNOTATIONS = new Set(['description', 'example', 'examples', 'deprecated', 'title']);
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
function bare(schema) {
  if (Array.isArray(schema)) return schema.map(bare);
  if (!schema || typeof schema !== 'object') return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (ANNOTATIONS.has(key)) continue;
    if (['enum', 'const', 'required', 'type'].includes(key)) out[key] = value;
    else if (SCHEMA_MAPS.has(key)) out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, bare(v)]));
    else out[key] = bare(value);
  }
  return out;
}

// The component schemas `schema` needs, transitively.
function neededComponents(spec, schema, into = {}) {
  const visit = (node) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        const name = refName(value);
        if (!into[name]) {
          into[name] = spec.components.schemas[name];
          visit(into[name]);
        }
      } else if (!['example', 'examples', 'description'].includes(key)) {
        visit(value);
      }
    }
  };
  visit(schema);
  return Object.fromEntries(Object.keys(into).sort().map((name) => [name, bare(into[name])]));
}

function unknownFormats(spec) {
  const formats = new Set();
  const visit = (node) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'format' && typeof value === 'string') formats.add(value);
      else if (!['example', 'examples'].includes(key)) visit(value);
    }
  };
  visit(spec);
  return [...formats].filter((f) => !AJV_FORMATS.has(f)).sort();
}

// ---------------------------------------------------------------------------
// The collection.

const stableId = (...parts) => {
  const h = crypto.createHash('sha256').update(parts.join('\u0000')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

const js = (source) => source.split('\n');
const str = JSON.stringify;

function testScript(spec, key, operation, step, formats) {
  const lines = [
    `// ${key} (${operation.operationId}): expects ${step.expect.join(' or ')}, as the OpenAPI document lists.`,
    `pm.test(${str(`status ${step.expect.join(' or ')}`)}, function () {`,
    `  pm.expect(pm.response.code, pm.response.text()).to.be.oneOf(${str(step.expect)});`,
    '});',
  ];
  const documented = {};
  for (const code of step.expect) {
    const content = operation.responses[String(code)].content || {};
    const [type] = Object.keys(content);
    documented[code] = type ? { contentType: type, schema: bare(content[type].schema) || null } : null;
  }
  const withBody = Object.values(documented).filter(Boolean);
  if (withBody.length) {
    const components = { schemas: neededComponents(spec, withBody.map((d) => d.schema)) };
    lines.push(
      `const documented = ${str(documented)}[pm.response.code];`,
      'if (documented) {',
      "  pm.test('Content-Type: ' + documented.contentType, function () {",
      "    pm.expect(pm.response.headers.get('Content-Type')).to.match(new RegExp('^' + documented.contentType.replace(/[+.]/g, '\\\\$&') + '\\\\b'));",
      '  });',
      '}',
    );
    if (withBody.some((d) => d.schema)) {
      lines.push(
        'if (documented && documented.schema) {',
        "  pm.test('the body matches the documented schema', function () {",
        `    pm.response.to.have.jsonSchema({ allOf: [documented.schema], components: ${str(components)} }, { unknownFormats: ${str(formats)} });`,
        '  });',
        '}',
      );
    }
  }
  if (step.problem) {
    const { type, title, param, detail } = step.problem;
    lines.push(
      'const problem = pm.response.json();',
      `pm.test(${str(`a problem: ${type}, "${title}"`)}, function () {`,
      `  pm.expect(problem.type).to.equal(${str(type)});`,
      `  pm.expect(problem.title).to.equal(${str(title)});`,
      `  pm.expect(problem.status).to.equal(${step.expect[0]});`,
      '});',
    );
    if (param) {
      lines.push(
        `pm.test(${str(`it names ${param[0]}: …${param[1]}…`)}, function () {`,
        `  const named = (problem.invalidParams || []).find((p) => p.name === ${str(param[0])});`,
        `  pm.expect(named, JSON.stringify(problem)).to.be.an('object');`,
        `  pm.expect(named.reason).to.include(${str(param[1])});`,
        '});',
      );
    }
    if (detail) {
      lines.push(
        `pm.test(${str(`the detail says: ${detail}`)}, function () {`,
        `  pm.expect(problem.detail).to.include(${str(detail)});`,
        '});',
      );
    }
    if (step.expect[0] === 401) {
      lines.push(
        "pm.test('a Bearer challenge', function () {",
        "  pm.expect(pm.response.headers.get('WWW-Authenticate')).to.match(/^Bearer /);",
        '});',
      );
    }
  }
  if (step.test) lines.push(...js(step.test));
  return lines;
}

function buildRequest(spec, converted, key, step, folder, formats, examplesTaken) {
  const operation = spec.ops.get(key);
  if (!operation) throw new Error(`${folder.folder}: no operation ${key} in the document`);
  for (const code of step.expect) {
    if (!operation.responses[String(code)]) {
      throw new Error(`${key}: the step "${step.name || ''}" expects ${code}, which the document does not list`);
    }
  }
  const base = converted.get(key);
  if (!base) throw new Error(`the converter made no request for ${key}`);
  const item = structuredClone(base);
  const request = item.request;
  const name = step.name || `${item.name.replace(/\.$/, '')} (${step.expect.join(' or ')})`;
  item.name = name;
  request.name = name;

  // Path parameters, and the query: the step's values, the other
  // documented parameters left in but disabled.
  const pathValues = step.path || {};
  for (const variable of request.url.variable || []) {
    if (!(variable.key in pathValues)) throw new Error(`${key}: no value for the path parameter ${variable.key}`);
    variable.value = pathValues[variable.key];
  }
  const query = step.query || {};
  for (const q of request.url.query || []) {
    if (q.key in query) {
      q.value = query[q.key];
      q.disabled = false;
    } else {
      q.disabled = true;
    }
  }
  for (const q of Object.keys(query)) {
    if (!(request.url.query || []).some((p) => p.key === q)) throw new Error(`${key}: no query parameter ${q}`);
  }
  const enabledQuery = (request.url.query || []).filter((q) => !q.disabled);
  const rawPath = request.url.path.join('/');
  request.url.raw =
    `{{baseUrl}}/${rawPath}` + (enabledQuery.length ? `?${enabledQuery.map((q) => `${q.key}=${q.value}`).join('&')}` : '');

  // The body, and its headers.
  request.header = (request.header || []).filter((h) => h.key.toLowerCase() !== 'content-type');
  if (step.body !== undefined) {
    if (!operation.requestBody) throw new Error(`${key}: the document has no request body`);
    request.header.unshift({ key: 'Content-Type', value: step.contentType || 'application/json' });
    request.body = { mode: 'raw', raw: step.body, options: { raw: { language: 'json' } } };
  } else {
    if (operation.requestBody?.required) throw new Error(`${key}: the document requires a body`);
    delete request.body;
  }
  if (step.auth) request.auth = step.auth;
  else delete request.auth;

  const description = [
    request.description?.content || '',
    step.note || '',
    `Operation \`${operation.operationId}\` (\`${key}\`) of the OpenAPI document; this request expects ${step.expect.join(' or ')}.`,
  ].filter(Boolean).join('\n\n');
  request.description = { content: description, type: 'text/markdown' };

  item.event = [];
  if (step.pre) item.event.push({ listen: 'prerequest', script: { type: 'text/javascript', exec: js(step.pre) } });
  item.event.push({
    listen: 'test',
    script: { type: 'text/javascript', exec: testScript(spec, key, operation, step, formats) },
  });

  // The converter's example answers: the documented 2xx ones, on the
  // first request of each operation.
  if (!examplesTaken.has(key) && step.expect.some((c) => c < 300)) {
    examplesTaken.add(key);
    item.response = (item.response || []).filter((r) => r.code >= 200 && r.code < 300);
  } else {
    item.response = [];
  }
  return item;
}

function stripIds(node) {
  if (Array.isArray(node)) return node.forEach(stripIds);
  if (!node || typeof node !== 'object') return;
  delete node.id;
  delete node._postman_id;
  Object.values(node).forEach(stripIds);
}

function assignIds(items, trail) {
  for (const item of items) {
    item.id = stableId(...trail, item.name);
    if (item.item) assignIds(item.item, [...trail, item.name]);
    for (const [i, response] of (item.response || []).entries()) response.id = stableId(...trail, item.name, 'response', String(i));
  }
}

async function main() {
  const text = await readSource(source);
  const spec = JSON.parse(text);
  spec.ops = operations(spec);
  const formats = unknownFormats(spec);
  const generated = await convert(text);

  // The converter's requests, by operation.
  const converted = new Map();
  const collect = (items) => {
    for (const item of items) {
      if (item.item) collect(item.item);
      else {
        const route = '/' + item.request.url.path.map((s) => (s.startsWith(':') ? `{${s.slice(1)}}` : s)).join('/');
        converted.set(`${item.request.method} ${route}`, item);
      }
    }
  };
  collect(generated.item);

  const examplesTaken = new Set();
  const folders = PLAN.map((folder) => {
    const out = {
      name: folder.folder,
      item: folder.steps.map((step) => buildRequest(spec, converted, step.op, step, folder, formats, examplesTaken)),
    };
    if (folder.description) out.description = folder.description;
    if (folder.auth) out.auth = folder.auth;
    if (folder.pre) out.event = [{ listen: 'prerequest', script: { type: 'text/javascript', exec: js(folder.pre) } }];
    return out;
  });

  // Every operation has a step with a 2xx it documents.
  const happy = new Set(PLAN.flatMap((f) => f.steps).filter((s) => s.expect.some((c) => c < 300)).map((s) => s.op));
  const missing = [...spec.ops.keys()].filter((key) => !happy.has(key));
  if (missing.length) {
    throw new Error(`operations of the document without a step in the plan (deploy/postman/generate.mjs): ${missing.join(', ')}`);
  }

  const collection = {
    info: {
      name: spec.info.title,
      description: {
        content: [
          spec.info.description,
          `Generated from the gateway's OpenAPI document (${spec.info.title} ${spec.info.version}) by deploy/postman/generate.mjs with openapi-to-postmanv2; do not edit by hand. Run it top to bottom (folders 1 to 7 as a partner, 8 with the admin key): deploy/postman/README.md.`,
        ].join('\n\n'),
        type: 'text/markdown',
      },
      schema: generated.info.schema,
    },
    auth: bearer('{{apiKey}}'),
    event: [
      {
        listen: 'prerequest',
        script: {
          type: 'text/javascript',
          exec: js(`${REQUIRE_VARIABLES}(['baseUrl', 'partnerId', 'apiKey']);`),
        },
      },
      {
        listen: 'test',
        script: {
          type: 'text/javascript',
          exec: js(`pm.test('an X-Request-Id', function () {
  pm.response.to.have.header('X-Request-Id');
});
if (pm.response.code >= 400) {
  pm.test('an error is application/problem+json', function () {
    pm.expect(pm.response.headers.get('Content-Type')).to.match(/^application\\/problem\\+json/);
  });
}`),
        },
      },
    ],
    variable: VARIABLES.map(([key, value, description]) => ({ key, value, type: 'string', description })),
    item: folders,
  };
  stripIds(collection);
  collection.info._postman_id = stableId('partner-callbacks', spec.info.title);
  assignIds(collection.item, []);
  // _postman_id first, as Postman writes it.
  collection.info = { _postman_id: collection.info._postman_id, ...collection.info };

  const rendered = JSON.stringify(collection, null, 2) + '\n';
  if (output === '-') process.stdout.write(rendered);
  else fs.writeFileSync(output, rendered);
}

main().catch((error) => {
  console.error(`generate.mjs: ${error.message}`);
  process.exit(1);
});
