// Derives tests/fixtures/ecs/fields.json, the trimmed ECS 8.x field reference that
// tests/ecs.rs checks every emitted event against, from the `@elastic/ecs` npm package
// (Elastic's generated ECS typings, Apache-2.0), whose `ecs_flat` is ECS's own
// generated/ecs/ecs_flat.yml as data.
//
//   cd "$(mktemp -d)" && npm pack @elastic/ecs@8.11.5 && tar xzf elastic-ecs-8.11.5.tgz
//   node tools/ecs-fields/extract.mjs "$PWD/package" > tests/fixtures/ecs/fields.json
//
// Kept: the field sets locgate writes (event, observer, host, source/destination with their
// geo, as and nat, user, url, http, network, tls), each field's ECS type, and the allowed
// values of the four categorization fields (with each category's expected event types).
import { createRequire } from "node:module";
import path from "node:path";

const pkg = process.argv[2];
if (!pkg) {
  console.error("usage: node extract.mjs PATH/TO/@elastic/ecs/package");
  process.exit(2);
}
const require = createRequire(import.meta.url);
const { EcsFlat } = require(path.join(pkg, "build/commonjs/ecs_flat.js"));
const { version } = require(path.join(pkg, "package.json"));

const keep = [
  /^(@timestamp|message|tags|labels)$/,
  /^ecs\.[^.]+$/,
  /^event\.[^.]+$/,
  /^observer\.[^.]+$/,
  /^host\.[^.]+$/,
  /^(source|destination)\.([^.]+|geo\.[^.]+|as\.number|as\.organization\.name|nat\.(ip|port))$/,
  /^user\.[^.]+$/,
  /^url\.[^.]+$/,
  /^http\.(version|(request|response)\.[^.]+)$/,
  /^network\.[^.]+$/,
  /^tls\.([^.]+|(client|server)\.[^.]+)$/,
];

const fields = {};
for (const name of Object.keys(EcsFlat).sort()) {
  if (keep.some((re) => re.test(name))) fields[name] = EcsFlat[name].type;
}
const names = (f) => EcsFlat[f].allowed_values.map((a) => a.name);
const categories = {};
for (const a of EcsFlat["event.category"].allowed_values) {
  categories[a.name] = a.expected_event_types;
}
const out = {
  about:
    "Trimmed Elastic Common Schema field reference (Copyright Elasticsearch B.V., Apache License 2.0), " +
    `derived by tools/ecs-fields/extract.mjs from the @elastic/ecs npm package ${version}.`,
  ecs_version: version.split(".").slice(0, 2).join(".") + ".0",
  fields,
  allowed: {
    "event.kind": names("event.kind"),
    "event.category": categories,
    "event.type": names("event.type"),
    "event.outcome": names("event.outcome"),
  },
};
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
