// The plan of the Postman collection that generate.mjs builds: the order
// its requests run in, what each sends and expects, and the negative cases
// (the echo rule's 400s, 401s) appended to the converted operations.

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
      {
        op: 'POST /v1/admin/partners/{partnerUniqueID}/portal-links',
        expect: [201],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        body: json({ expiresInSeconds: 600 }),
        test: `const minted = pm.response.json();
pm.test('a link to the portal with a token of its own', function () {
  pm.expect(minted.link).to.match(/^\\/portal\\/link\\?token=pcb_/);
});
${set('linkToken', "minted.link.split('token=')[1]")}`,
      },
      {
        op: 'GET /{partnerUniqueID}/callbacks',
        name: "401: a portal link's token on the REST API",
        expect: [401],
        path: { partnerUniqueID: '{{newPartnerId}}' },
        auth: bearer('{{linkToken}}'),
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
    'recoverSince', 'recoverUntil', 'recoveryId', 'newTypeId', 'newPartnerId', 'newKeyId', 'newKeyToken', 'linkToken',
  ].map((name) => [name, '', 'Set by the requests']),
];

export { PLAN, VARIABLES, REQUIRE_VARIABLES, bearer, json, set };
