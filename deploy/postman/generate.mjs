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
import { PLAN, VARIABLES, REQUIRE_VARIABLES, bearer, json, set } from './plan.mjs';

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
