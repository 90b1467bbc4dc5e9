// Converts Natural Earth 110m (public domain, as shipped in the npm package world-atlas) to two
// SVG path strings in an equirectangular projection (x = longitude, y = -latitude, degrees), so
// the review page can draw a map with no tile server and no client-side library.
//
//   cd tools/world-map && npm ci --no-audit --no-fund && node build.mjs
//
// writes ../../assets/world-110m-land.path and ../../assets/world-110m-borders.path.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { feature, mesh } from 'topojson-client';

const require = createRequire(import.meta.url);
const topo = JSON.parse(readFileSync(require.resolve('world-atlas/countries-110m.json'), 'utf8'));
const r = (v) => Math.round(v * 10) / 10;

function ringPath(ring) {
  let d = '';
  let prev = null;
  let prevLon = null;
  let shift = 0;
  for (const [rawLon, lat] of ring) {
    // Keep longitudes continuous across the antimeridian (170 -> -170 becomes 170 -> 190), so a
    // ring that crosses it never draws a line or a fill across the whole map; the part beyond
    // +-180 falls outside the map's view box.
    if (prevLon !== null && rawLon + shift - prevLon > 180) shift -= 360;
    if (prevLon !== null && rawLon + shift - prevLon < -180) shift += 360;
    const lon = rawLon + shift;
    const p = `${r(lon)} ${r(-lat)}`;
    prevLon = lon;
    if (p === prev) continue;
    d += (d ? 'L' : 'M') + p;
    prev = p;
  }
  return d;
}

function geometryPath(g) {
  const polys = g.type === 'Polygon' ? [g.coordinates]
    : g.type === 'MultiPolygon' ? g.coordinates
    : g.type === 'MultiLineString' ? [g.coordinates]
    : g.type === 'LineString' ? [[g.coordinates]] : [];
  const closed = g.type.endsWith('Polygon');
  return polys.map((rings) => rings.map((ring) => ringPath(ring) + (closed ? 'Z' : '')).join('')).join('');
}

const land = feature(topo, topo.objects.land ?? { type: 'GeometryCollection', geometries: topo.objects.countries.geometries });
const landD = (land.features ?? [land]).map((f) => geometryPath(f.geometry)).join('');
const borders = mesh(topo, topo.objects.countries, (a, b) => a !== b);
const bordersD = geometryPath(borders);

writeFileSync(new URL('../../assets/world-110m-land.path', import.meta.url), landD + '\n');
writeFileSync(new URL('../../assets/world-110m-borders.path', import.meta.url), bordersD + '\n');
console.log(`land ${landD.length} bytes, borders ${bordersD.length} bytes`);
