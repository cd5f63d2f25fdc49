// IKMo Studio: chat with the agents, photos on a timeline, a pelvis path drawn on the floor, and a
// three.js player of the result. Talks only to its own server (/v1/...); three.js is our own copy.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

const FPS = 20;
const MAX_PHOTO_BYTES = 20 * 1024 * 1024;
const FLOOR_HALF = 10;            // the floor grid is 20 m wide; a drawn path stays on it
// The longest motion the server makes (`/v1/health` max_duration_s; MAX_DURATION_S in motion_model/limits.py).
let MAX_DURATION = 120;
const PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19];
const LEFT = new Set([1, 4, 7, 10, 13, 16, 18, 20]);
const RIGHT = new Set([2, 5, 8, 11, 14, 17, 19, 21]);
const FILES = [["motion.bvh", "BVH"], ["motion_smpl.npz", "SMPL npz"], ["joints.npy", "joints"],
               ["preview.mp4", "MP4"], ["motion.glb", "GLB"], ["transcript.md", "transcript"]];
const METRIC_NAMES = { traj_err_mean: "path error, mean (m)", traj_err_max: "path error, max (m)",
  keyframe_mpjpe: "key pose error (m)", keyframe_mpjpe_max: "key pose error, max (m)",
  foot_skating_ratio: "foot skating", heading_err_mean_deg: "facing vs path (°)",
  rig_projection_mean_m: "rig projection (m)" };
const STAGES = { queued: "waiting in the queue", started: "started", begin: "reading the request",
  describe: "describing the motion", keyframe_pose: "reading a photo", trajectory: "planning the path",
  validate: "checking the plan", generate: "sampling the motion", critique: "critiquing the result",
  respond: "writing the answer", export: "exporting BVH / SMPL / preview" };

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; };

// --------------------------------------------------------------------------- state

const S = {
  threadId: localStorage.getItem("ikmo.thread") || null,
  turns: [],
  photos: [],              // {id, url, overlay, verdict, time_s (null: the agents choose), name, busy}
  path: null,              // [[x, z], ...] drawn or edited, starting at the origin; null: the agents plan it
  tool: "orbit",
  player: null,            // /v1/player/RUN
  runId: null,
  frame: 0, playing: false, loop: true, show: "a", abA: 0, abB: 0,
  duration: 6.0,
  busy: false,
  progressJob: null,       // the job the progress panel shows
};

// What is being prepared for the next message (text, photos and their times, the drawn path), kept
// per thread in the browser so a reload loses none of it; "new" before the first message.
const draftKey = () => "ikmo.draft." + (S.threadId || "new");
function draftJSON() { return JSON.stringify({ photos: S.photos.filter((p) => !p.busy), path: S.path, text: $("text").value,
                                               duration: $("duration").value }); }
function saveDraft() { localStorage.setItem(draftKey(), draftJSON()); }
function loadDraft() {
  const d = JSON.parse(localStorage.getItem(draftKey()) || "null");
  S.photos = d?.photos || []; S.path = d?.path || null; $("text").value = d?.text || ""; $("duration").value = appliedDuration = d?.duration || "";
  renderPhotos(); drawPathLine(); renderTimeline();
}

// --------------------------------------------------------------------------- messages

let noticeTimer = null;
function notice(text, kind = "error") {
  $("notice-text").textContent = text;
  $("notice").className = "notice" + (kind === "info" ? " info" : "");
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { $("notice").hidden = true; }, kind === "info" ? 4000 : 12000);
}
$("notice-close").onclick = () => { $("notice").hidden = true; };

async function api(method, url, body, raw) {
  const opts = { method, headers: {} };
  if (raw !== undefined) { opts.body = raw; opts.headers["Content-Type"] = raw.type || "application/octet-stream"; }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  let r;
  try { r = await fetch(url, opts); } catch (e) { throw new Error("the server cannot be reached (" + e.message + "); is `ikmo serve` running?"); }
  let data = null;
  try { data = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

// --------------------------------------------------------------------------- 3D scene

const canvas = $("viewport");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
renderer.setClearColor(0x101318);
const scene = new THREE.Scene();
scene.fog = new THREE.Fog(0x101318, 14, 30);
const camera = new THREE.PerspectiveCamera(45, 1, 0.05, 100);
camera.position.set(4.5, 3.2, 6.5);
const controls = new OrbitControls(camera, canvas);
controls.target.set(0, 0.9, 1);
controls.enableDamping = true;
scene.add(new THREE.HemisphereLight(0xdfe8ff, 0x202530, 2.2));
const sun = new THREE.DirectionalLight(0xffffff, 1.6); sun.position.set(3, 6, 4); scene.add(sun);
const grid = new THREE.GridHelper(2 * FLOOR_HALF, 2 * FLOOR_HALF, 0x3b4456, 0x262c38); scene.add(grid);
const floor = new THREE.Mesh(new THREE.PlaneGeometry(2 * FLOOR_HALF, 2 * FLOOR_HALF),
                             new THREE.MeshStandardMaterial({ color: 0x171b23, roughness: 1 }));
floor.rotation.x = -Math.PI / 2; floor.position.y = -0.002; scene.add(floor);
const origin = new THREE.Mesh(new THREE.RingGeometry(0.12, 0.16, 32), new THREE.MeshBasicMaterial({ color: 0xffd166, side: THREE.DoubleSide }));
origin.rotation.x = -Math.PI / 2; origin.position.y = 0.003; scene.add(origin);
const floorPlane = new THREE.Plane(new THREE.Vector3(0, 1, 0), 0);
const raycaster = new THREE.Raycaster();

function makeSkeleton(colourMid, opacity = 1, sided = true) {
  const group = new THREE.Group();
  const mat = (c) => new THREE.MeshStandardMaterial({ color: c, roughness: 0.5, transparent: opacity < 1, opacity });
  const colour = (j) => !sided ? colourMid : LEFT.has(j) ? 0x4fb3ff : RIGHT.has(j) ? 0xff8a3d : colourMid;
  const joints = [], bones = [];
  for (let j = 0; j < 22; j++) {
    const m = new THREE.Mesh(new THREE.SphereGeometry(j === 15 ? 0.09 : 0.028, 16, 12), mat(colour(j)));
    group.add(m); joints.push(m);
  }
  const boneGeo = new THREE.CylinderGeometry(0.022, 0.022, 1, 10); boneGeo.translate(0, 0.5, 0); boneGeo.rotateX(Math.PI / 2);
  for (let j = 1; j < 22; j++) { const b = new THREE.Mesh(boneGeo, mat(colour(j))); group.add(b); bones.push(b); }
  group.userData = { joints, bones };
  return group;
}
function poseSkeleton(sk, pose) {   // pose: 22 x [x, y, z]
  const { joints, bones } = sk.userData;
  for (let j = 0; j < 22; j++) joints[j].position.set(pose[j][0], pose[j][1], pose[j][2]);
  for (let j = 1; j < 22; j++) {
    const a = joints[PARENTS[j]].position, b = joints[j].position, bone = bones[j - 1];
    bone.position.copy(a); bone.lookAt(b); bone.scale.set(1, 1, Math.max(a.distanceTo(b), 1e-4));
  }
}
const skA = makeSkeleton(0xe8ecf4); scene.add(skA); skA.visible = false;
const skB = makeSkeleton(0xe07be0, 0.7, false); scene.add(skB); skB.visible = false;   // attempt B: one colour
const ghosts = new THREE.Group(); scene.add(ghosts);
let targetLine = null, trailLine = null, drawnLine = null, handles = new THREE.Group(); scene.add(handles);
let mannequin = null, mixer = null, mannequinClip = null;

function lineOf(points, colour, dashed = false, y = 0.01) {
  const geo = new THREE.BufferGeometry().setFromPoints(points.map((p) => new THREE.Vector3(p[0], y, p[1])));
  const mat = dashed ? new THREE.LineDashedMaterial({ color: colour, dashSize: 0.12, gapSize: 0.07 })
                     : new THREE.LineBasicMaterial({ color: colour });
  const line = new THREE.Line(geo, mat);
  if (dashed) line.computeLineDistances();
  return line;
}

function resize() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.floor(w * renderer.getPixelRatio()) || canvas.height !== Math.floor(h * renderer.getPixelRatio())) {
    renderer.setSize(w, h, false); camera.aspect = w / Math.max(h, 1); camera.updateProjectionMatrix();
  }
}

// --------------------------------------------------------------------------- the player

function frames() { return S.player ? S.player.joints.length : 0; }
function attemptJoints(i) { return S.player?.attempts?.[i]?.joints || S.player?.joints; }

function showFrame(f) {
  if (!S.player) return;
  const n = frames(); S.frame = Math.max(0, Math.min(n - 1, Math.round(f)));
  const a = S.player.attempts?.length ? attemptJoints(S.abA) : S.player.joints;
  const b = attemptJoints(S.abB);
  const fa = Math.min(S.frame, a.length - 1), fb = Math.min(S.frame, b.length - 1);
  const meshOn = Boolean(mannequin) && $("show-mesh").checked;   // the mannequin stands for attempt A
  if (mannequin) mannequin.visible = meshOn && S.show !== "b";
  skA.visible = S.show !== "b" && (!meshOn || $("show-bones").checked);
  skB.visible = S.show !== "a" && S.player.attempts?.length > 1;
  if (S.show === "b") { skB.visible = true; }
  poseSkeleton(skA, a[fa]); if (skB.visible) poseSkeleton(skB, b[fb]);
  if ($("follow").checked) {   // keep the pelvis in view: move the orbit target and the camera with it
    const p = a[fa][0], d = new THREE.Vector3(p[0] - controls.target.x, 0, p[2] - controls.target.z);
    controls.target.add(d); camera.position.add(d);
  }
  if (mixer && mannequinClip) { mixer.setTime(S.frame / FPS); }
  $("scrub").value = String(S.frame);
  $("clock").textContent = `${(S.frame / FPS).toFixed(2)} s · ${S.frame + 1}/${n}`;
  $("tl-playhead").style.left = `${(100 * S.frame / FPS) / timelineSeconds()}%`;
  document.body.dataset.frame = String(S.frame);
}

function yawOf(pose) {   // the body's facing, from its hips (left hip 1, right hip 2): angle from +Z towards +X
  const dx = pose[1][0] - pose[2][0], dz = pose[1][2] - pose[2][2];
  return Math.atan2(-dz, dx);   // facing +Z (yaw 0) puts the left hip at +X
}

function buildPlayerScene() {
  ghosts.clear();
  if (targetLine) { scene.remove(targetLine); targetLine = null; }
  if (trailLine) { scene.remove(trailLine); trailLine = null; }
  const P = S.player; if (!P) return;
  const tgt = P.target?.positions;
  if (tgt && tgt.length) { targetLine = lineOf(tgt.map((p) => [p[0], p[2]]), 0xffd166, true, 0.012); scene.add(targetLine); }
  trailLine = lineOf(P.joints.map((p) => [p[0][0], p[0][2]]), 0x6d7890, false, 0.006); scene.add(trailLine);
  for (const kf of P.keyframes || []) {   // a ghost of each key pose, where and how the body stands then
    const f = Math.min(P.joints.length - 1, Math.round(kf.time_s * FPS));
    const at = P.joints[f][0], yaw = yawOf(P.joints[f]);
    const c = Math.cos(yaw), s = Math.sin(yaw);
    const pose = kf.joints.map((q) => [at[0] + c * q[0] + s * q[2], at[1] + q[1], at[2] - s * q[0] + c * q[2]]);
    const g = makeSkeleton(0xc9bcff, 0.5); poseSkeleton(g, pose); ghosts.add(g);
  }
  // frame the motion
  const xs = P.joints.map((p) => p[0][0]), zs = P.joints.map((p) => p[0][2]);
  const cx = (Math.min(...xs) + Math.max(...xs)) / 2, cz = (Math.min(...zs) + Math.max(...zs)) / 2;
  const span = Math.max(2, Math.max(...xs) - Math.min(...xs), Math.max(...zs) - Math.min(...zs));
  if ($("follow").checked) {   // close on the body; the camera then moves with the pelvis
    const p = P.joints[0][0]; controls.target.set(p[0], 0.9, p[2]); camera.position.set(p[0] + 3.4, 2.2, p[2] + 4.4);
  } else {                     // the whole motion in view
    controls.target.set(cx, 0.9, cz); camera.position.set(cx + span * 1.1, 1.6 + span * 0.55, cz + span * 1.35);
  }
  S.duration = Math.min(MAX_DURATION, Math.max(1, (P.joints.length - 1) / FPS));
  $("scrub").max = String(P.joints.length - 1);
  $("empty-hint").hidden = true;
  renderAB(); renderTimeline(); renderResults(P);
  loadMannequin(P.files?.["motion.glb"] || null);
}

// Hook for the skinned mannequin: a run with `motion.glb` (skinned GLB export) plays its mesh,
// driven by the same clock as the skeleton; without one the skeleton is drawn.
function loadMannequin(url) {
  if (mannequin) { scene.remove(mannequin); mannequin = null; mixer = null; mannequinClip = null; }
  $("mesh-toggle").hidden = $("bones-toggle").hidden = !url;
  document.body.dataset.mannequin = url ? "loading" : "none";
  if (!url) return;
  new GLTFLoader().load(url, (gltf) => {
    if (S.player?.files?.["motion.glb"] !== url) return;   // another motion was opened meanwhile
    mannequin = gltf.scene; scene.add(mannequin);
    document.body.dataset.mannequin = "loaded";
    if (gltf.animations.length) {
      mixer = new THREE.AnimationMixer(mannequin); mannequinClip = gltf.animations[0];
      mixer.clipAction(mannequinClip).play();
    }
    showFrame(S.frame);
  }, undefined, (err) => { document.body.dataset.mannequin = "failed";
    notice("the mannequin (motion.glb) could not be loaded: " + err.message + "; the skeleton is shown"); });
}

async function loadPlayer(runId) {
  try {
    S.player = await api("GET", `/v1/player/${runId}`);
  } catch (e) { notice(e.message); return; }
  S.runId = runId; S.abA = Math.max(0, (S.player.attempts || []).findIndex((a) => a.chosen)); S.abB = S.abA;
  buildPlayerScene(); showFrame(0);
  document.body.dataset.player = "ready"; document.body.dataset.run = runId;
  for (const m of document.querySelectorAll(".msg[data-run]")) m.classList.toggle("viewing", m.dataset.run === runId);
}

function renderAB() {
  const att = S.player?.attempts || [];
  $("ab").hidden = att.length < 2;
  for (const [id, key] of [["ab-a", "abA"], ["ab-b", "abB"]]) {
    const sel = $(id); sel.innerHTML = "";
    att.forEach((a, i) => { const o = el("option", null, `#${a.attempt + 1}${a.chosen ? " ★" : ""}${a.change ? " " + a.change : ""}`);
      o.value = String(i); sel.appendChild(o); });
    sel.value = String(S[key]);
    sel.onchange = () => { S[key] = Number(sel.value); showFrame(S.frame); };
  }
  if (att.length >= 2 && S.abB === S.abA) { S.abB = (S.abA + 1) % att.length; $("ab-b").value = String(S.abB); }
}
for (const b of document.querySelectorAll(".seg button")) {
  b.onclick = () => { S.show = b.dataset.show; for (const o of document.querySelectorAll(".seg button")) o.classList.toggle("on", o === b); showFrame(S.frame); };
}

$("play").onclick = () => togglePlay();
function togglePlay(on = !S.playing) {
  if (!S.player) return;
  if (on && S.frame >= frames() - 1) S.frame = 0;
  S.playing = on; $("play").textContent = on ? "❚❚" : "▶";
}
$("scrub").oninput = () => { togglePlay(false); showFrame(Number($("scrub").value)); };
$("loop").onchange = () => { S.loop = $("loop").checked; };
$("show-mesh").onchange = $("show-bones").onchange = () => showFrame(S.frame);
window.addEventListener("keydown", (e) => { if (e.code === "Space" && document.activeElement.tagName !== "TEXTAREA") { e.preventDefault(); togglePlay(); } });

let clock = 0, last = performance.now();
function tick(now) {
  const dt = Math.min(0.25, (now - last) / 1000); last = now;
  if (S.playing && S.player) {
    clock += dt;
    const steps = Math.floor(clock * FPS);          // the motion's own rate: 20 frames per second
    if (steps > 0) {
      clock -= steps / FPS;
      let f = S.frame + steps;
      if (f >= frames()) { if (S.loop) f %= frames(); else { f = frames() - 1; togglePlay(false); } }
      showFrame(f);
    }
  }
  resize(); controls.update(); renderer.render(scene, camera);
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);

// --------------------------------------------------------------------------- drawing the path

function floorPoint(ev) {
  const r = canvas.getBoundingClientRect();
  const ndc = new THREE.Vector2(((ev.clientX - r.left) / r.width) * 2 - 1, -((ev.clientY - r.top) / r.height) * 2 + 1);
  raycaster.setFromCamera(ndc, camera);
  const hit = raycaster.ray.intersectPlane(floorPlane, new THREE.Vector3());
  if (!hit || Math.abs(hit.x) > FLOOR_HALF || Math.abs(hit.z) > FLOOR_HALF) return null;
  return hit;
}

function drawPathLine() {
  if (drawnLine) { scene.remove(drawnLine); drawnLine = null; }
  handles.clear();
  const pts = S.path;
  $("path-info").textContent = pts ? `your path: ${pathLength(pts).toFixed(1)} m, ${pts.length} points — it replaces the agents' path` : "";
  $("empty-hint").hidden = Boolean(pts || S.player);
  updateDraftInfo();
  if (!pts) return;
  drawnLine = lineOf(pts, 0x39c6d8, false, 0.02); scene.add(drawnLine);
  if (S.tool === "edit") {
    for (let i = 1; i < pts.length; i++) {
      const h = new THREE.Mesh(new THREE.SphereGeometry(0.07, 14, 10), new THREE.MeshBasicMaterial({ color: 0x39c6d8 }));
      h.position.set(pts[i][0], 0.03, pts[i][1]); h.userData.index = i; handles.add(h);
    }
  }
}
function pathLength(p) { let s = 0; for (let i = 1; i < p.length; i++) s += Math.hypot(p[i][0] - p[i - 1][0], p[i][1] - p[i - 1][1]); return s; }
function thin(points, maxPoints) {     // keep the stroke's shape with at most maxPoints points
  if (points.length <= maxPoints) return points;
  const out = []; for (let i = 0; i < maxPoints; i++) out.push(points[Math.round(i * (points.length - 1) / (maxPoints - 1))]);
  return out;
}

let stroke = null, dragHandle = null;
canvas.addEventListener("pointerdown", (ev) => {
  if (S.tool === "draw") {
    const p = floorPoint(ev);
    if (!p) { notice("Start the path on the floor grid (within 10 m of the character)."); return; }
    stroke = [[p.x, p.z]]; canvas.setPointerCapture(ev.pointerId);
  } else if (S.tool === "edit" && S.path) {
    const r = canvas.getBoundingClientRect();
    raycaster.setFromCamera(new THREE.Vector2(((ev.clientX - r.left) / r.width) * 2 - 1, -((ev.clientY - r.top) / r.height) * 2 + 1), camera);
    const hit = raycaster.intersectObjects(handles.children)[0];
    if (hit) { dragHandle = hit.object.userData.index; controls.enabled = false; canvas.setPointerCapture(ev.pointerId); }
  }
});
canvas.addEventListener("pointermove", (ev) => {
  if (stroke) {
    const p = floorPoint(ev);
    if (!p) { endStroke(true); return; }
    const lastP = stroke[stroke.length - 1];
    if (Math.hypot(p.x - lastP[0], p.z - lastP[1]) > 0.05) {
      stroke.push([p.x, p.z]);
      if (drawnLine) scene.remove(drawnLine);
      drawnLine = lineOf(stroke, 0x39c6d8, false, 0.02); scene.add(drawnLine);
    }
  } else if (dragHandle !== null) {
    const p = floorPoint(ev);
    if (!p) { notice("A path point must stay on the floor grid; it is kept where it was."); return; }
    S.path[dragHandle] = [round2(p.x), round2(p.z)]; drawPathLine(); saveDraft();
  }
});
canvas.addEventListener("pointerup", () => { if (stroke) endStroke(false); if (dragHandle !== null) { dragHandle = null; controls.enabled = true; } });
const round2 = (v) => Math.round(v * 100) / 100;

function endStroke(offFloor) {
  const pts = stroke; stroke = null;
  if (offFloor) notice("The path left the floor: keep the pointer on the grid (10 m around the start). What you drew so far is kept.");
  if (!pts || pts.length < 2 || pathLength(pts) < 0.2) {
    if (!offFloor) notice("Drag on the floor to draw a path (at least 20 cm).", "info");
    drawPathLine(); return;
  }
  const [x0, z0] = pts[0];  // the motion starts at the origin: the stroke moves there
  const moved = thin(pts, 60).map(([x, z]) => [round2(x - x0), round2(z - z0)]);
  if (moved.some(([x, z]) => Math.abs(x) > FLOOR_HALF * 2 || Math.abs(z) > FLOOR_HALF * 2)) {
    notice("That path runs too far from the start; draw it within the grid."); drawPathLine(); return;
  }
  S.path = moved; drawPathLine(); saveDraft();
  if (!offFloor) notice("Path drawn: your next message uses it as the pelvis trajectory. ✕ Clear path gives it back to the agents.", "info");
}

function setTool(tool) {
  S.tool = S.tool === tool ? "orbit" : tool;
  if (S.tool === "edit" && !S.path) {
    const tgt = S.player?.target?.positions;
    if (!tgt) { notice("There is no path to edit yet: draw one, or make a motion first."); S.tool = "orbit"; }
    else { S.path = thin(tgt.map((p) => [round2(p[0]), round2(p[2])]), 10);
           notice("The agents' path is now yours to edit: drag its points.", "info"); saveDraft(); }
  }
  controls.enabled = S.tool !== "draw";
  canvas.classList.toggle("drawing", S.tool === "draw");
  $("tool-draw").classList.toggle("on", S.tool === "draw"); $("tool-edit").classList.toggle("on", S.tool === "edit");
  drawPathLine();
}
$("tool-draw").onclick = () => setTool("draw");
$("tool-edit").onclick = () => setTool("edit");
$("tool-clear").onclick = () => { S.path = null; drawPathLine(); saveDraft(); notice("Path cleared: the agents plan the trajectory.", "info"); };

// --------------------------------------------------------------------------- photos and the timeline

const zone = $("photos-zone");
zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); addPhotos([...e.dataTransfer.files]); });
$("photo-input").onchange = (e) => { addPhotos([...e.target.files]); e.target.value = ""; };

async function addPhotos(files) {
  for (const f of files) {
    if (!f.type.startsWith("image/")) { notice(`${f.name} is not an image (${f.type || "unknown type"}); drop a photo (JPEG, PNG, WebP).`); continue; }
    if (f.size > MAX_PHOTO_BYTES) { notice(`${f.name} is ${(f.size / 2 ** 20).toFixed(1)} MB; photos up to 20 MB are read — use a smaller one.`); continue; }
    if (S.photos.length >= 8) { notice("A request takes at most 8 photos; remove one first."); break; }
    const tmp = { id: "busy" + Math.random(), name: f.name, busy: true, url: URL.createObjectURL(f), time_s: null };
    S.photos.push(tmp); renderPhotos();
    try {
      const r = await api("POST", "/v1/photos", undefined, f);
      Object.assign(tmp, { id: r.id, url: r.url, overlay: r.overlay, verdict: r.verdict, busy: false, fit_error_m: r.fit_error_m });
    } catch (e) {
      S.photos = S.photos.filter((p) => p !== tmp);
      notice(`${f.name}: ${e.message}`);
    }
    renderPhotos(); renderTimeline(); saveDraft();
  }
}

function renderPhotos() {
  const box = $("photos"); box.innerHTML = "";
  S.photos.forEach((p, i) => {
    const card = el("div", "photo"); card.dataset.id = p.id;
    const img = el("img"); img.src = p.overlay || p.url; img.alt = p.name || "photo"; card.appendChild(img);
    const v = p.busy ? el("div", "verdict busy", "reading the pose…")
      : el("div", "verdict " + (p.verdict?.ok ? "ok" : "bad"), p.verdict?.ok ? `✓ fit looks right (${(100 * (p.fit_error_m || 0)).toFixed(0)} cm)` : `⚠ ${p.verdict?.note || p.verdict?.problem}`);
    v.title = p.verdict?.note || ""; card.appendChild(v);
    const t = el("div", "verdict", p.time_s == null ? `#${i + 1} · time: agents choose` : `#${i + 1} · at ${p.time_s.toFixed(2)} s`); card.appendChild(t);
    const x = el("button", "x", "×"); x.title = "remove"; x.onclick = () => { S.photos.splice(i, 1); renderPhotos(); renderTimeline(); saveDraft(); };
    card.appendChild(x); box.appendChild(card);
  });
  updateDraftInfo();
}

function renderTimeline() {
  const ruler = $("tl-ruler"), lane = $("tl-lane"); ruler.innerHTML = ""; lane.innerHTML = "";
  const D = timelineSeconds();
  for (let t = 0; t <= D + 1e-6; t += 0.5) {
    const tick = el("i"); tick.style.left = `${100 * t / D}%`; ruler.appendChild(tick);
    if (Math.abs(t - Math.round(t)) < 1e-6 && t > 0) { const s = el("span", null, `${t.toFixed(0)}s`); s.style.left = `${100 * t / D}%`; ruler.appendChild(s); }
  }
  for (const kf of S.player?.keyframes || []) {   // the current motion's key poses (photos and words)
    const k = el("div", "tl-key"); k.style.left = `${100 * Math.min(kf.time_s, D) / D}%`;
    k.title = `key pose at ${kf.time_s.toFixed(2)} s (${kf.source || "keyframe"})`; ruler.appendChild(k);
  }
  S.photos.forEach((p, i) => {
    if (p.busy) return;
    const auto = p.time_s == null;
    const chip = el("div", "tl-photo" + (auto ? " auto" : "") + (p.verdict && !p.verdict.ok ? " bad" : " ok"));
    chip.style.backgroundImage = `url("${p.url}")`; chip.dataset.id = p.id;
    const t = auto ? D * (i + 1) / (S.photos.length + 1) : Math.min(p.time_s, D);
    chip.style.left = `${100 * t / D}%`;
    const label = el("b", null, auto ? "auto" : `${p.time_s.toFixed(2)}s`); chip.appendChild(label);
    chip.title = "drag to set the time; double-click: the agents choose";
    chip.addEventListener("pointerdown", (ev) => {
      chip.setPointerCapture(ev.pointerId);
      const move = (e) => {
        const r = $("timeline").getBoundingClientRect();
        const time = Math.round(20 * Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)) * D) / 20;   // on a frame
        p.time_s = time; chip.style.left = `${100 * time / D}%`; label.textContent = `${time.toFixed(2)}s`; chip.classList.remove("auto");
      };
      const up = () => { chip.removeEventListener("pointermove", move); chip.removeEventListener("pointerup", up); renderPhotos(); saveDraft(); };
      chip.addEventListener("pointermove", move); chip.addEventListener("pointerup", up);
    });
    chip.addEventListener("dblclick", () => { p.time_s = null; renderTimeline(); renderPhotos(); saveDraft(); });
    lane.appendChild(chip);
  });
  $("tl-playhead").style.left = `${(100 * S.frame / FPS) / D}%`;
  const late = S.photos.filter((p) => p.time_s != null && p.time_s > D);
  if (late.length) notice(`A photo is set after the end (${D.toFixed(1)} s): drag it earlier or make the length longer.`);
}

// The timeline spans the length asked for (the "length" field), else the motion shown, else 6 s.
function timelineSeconds() {
  const asked = Number($("duration").value);
  return asked > 0 ? Math.min(MAX_DURATION, asked) : S.duration;
}
let appliedDuration = "";
$("duration").addEventListener("change", () => {
  const v = $("duration").value;
  if (v === appliedDuration) return;   // a second change event (on blur) would rebuild the timeline mid-drag
  appliedDuration = v;
  if (v !== "" && !(Number(v) >= 0.5 && Number(v) <= MAX_DURATION)) { notice(`A motion lasts 0.5 to ${MAX_DURATION} s; leave the length empty to let the agents choose.`); $("duration").value = ""; }
  renderTimeline(); saveDraft();
});

function updateDraftInfo() {
  const bits = [];
  if (S.photos.length) bits.push(`${S.photos.length} photo${S.photos.length > 1 ? "s" : ""}`);
  if (S.path) bits.push("your path");
  $("draft-info").textContent = bits.length ? "with " + bits.join(" + ") : "";
}

// --------------------------------------------------------------------------- threads and chat

async function refreshThreads() {
  let list = [];
  try { list = (await api("GET", "/v1/threads")).threads; } catch (e) { notice(e.message); return; }
  const ul = $("threads"); ul.innerHTML = "";
  for (const t of list) {
    const li = el("li", "thread" + (t.id === S.threadId ? " active" : "")); li.dataset.id = t.id;
    li.appendChild(el("div", "t-title", t.title)); li.appendChild(el("div", "t-meta", `${t.turns} message${t.turns === 1 ? "" : "s"} · ${new Date(t.updated * 1000).toLocaleString()}`));
    li.onclick = () => openThread(t.id);
    ul.appendChild(li);
  }
  return list;
}

async function openThread(id) {
  let data;
  try { data = await api("GET", `/v1/threads/${id}`); } catch (e) { notice(e.message); localStorage.removeItem("ikmo.thread"); S.threadId = null; return; }
  S.threadId = id; localStorage.setItem("ikmo.thread", id); S.turns = data.turns;
  for (const li of document.querySelectorAll(".thread")) li.classList.toggle("active", li.dataset.id === id);
  renderChat(); loadDraft();
  const lastOk = [...S.turns].reverse().find((t) => t.status === 200 && t.reply?.files?.["joints.npy"]);
  if (lastOk) await loadPlayer(lastOk.run_id);
  else { S.player = null; skA.visible = skB.visible = false; ghosts.clear(); $("empty-hint").hidden = Boolean(S.path); renderResults(null); }
  const running = S.turns.find((t) => t.status == null);
  if (running) follow(running.run_id, running);
}

async function newThread(carryDraft = false) {
  const { id } = await api("POST", "/v1/threads");
  if (carryDraft) localStorage.setItem("ikmo.draft." + id, draftJSON());   // the message being sent keeps its photos and path
  await refreshThreads(); await openThread(id);
  return id;
}
$("new-thread").onclick = () => newThread().catch((e) => notice(e.message));

function renderChat() {
  const chat = $("chat"); chat.innerHTML = "";
  if (!S.turns.length) chat.appendChild(el("div", "empty-chat", "Say what the motion should be. Follow-ups edit the last motion: “make it slower”, “wave with the other hand”."));
  for (const t of S.turns) {
    const u = el("div", "msg user", t.message);
    const extra = [];
    if (t.request?.photos?.length) extra.push(`${t.request.photos.length} photo(s)`);
    if (t.request?.path_xz) extra.push("drawn path");
    if (extra.length) u.appendChild(el("div", "meta", "with " + extra.join(" + ")));
    chat.appendChild(u);
    if (t.status == null) { chat.appendChild(el("div", "msg answer pending", "working…")); continue; }
    chat.appendChild(replyBubble(t));
  }
  chat.scrollTop = chat.scrollHeight;
}

function replyBubble(t) {
  const r = t.reply || {};
  if (r.question) { return el("div", "msg question", r.question); }
  if (t.status !== 200) { const b = el("div", "msg error", "✕ " + (r.error || "the run failed"));
    b.appendChild(el("div", "meta", "Nothing made before is lost; change the request and send it again.")); return b; }
  const b = el("div", "msg answer", r.answer || "done"); b.dataset.run = t.run_id;
  if (r.notes?.length) { const ul = el("ul", "notes"); for (const n of r.notes) ul.appendChild(el("li", null, n)); b.appendChild(ul); }
  b.appendChild(el("div", "meta", `${r.seconds?.toFixed?.(1) ?? "?"} s · run ${t.run_id}`));
  const v = el("button", "view", "▶ view this motion"); v.onclick = () => loadPlayer(t.run_id); b.appendChild(v);
  return b;
}

// The progress panel stays up at least this long: a small motion can be done before its event stream
// opens, and a panel shown and hidden within one frame is a flicker nobody (and no test) can see.
const PROGRESS_MIN_MS = 800;

function follow(jobId, turn) {
  const shownAt = performance.now(); S.progressJob = jobId;
  S.busy = true; $("send").disabled = true; $("progress").hidden = false; $("progress-steps").innerHTML = "";
  $("progress-bar").style.width = "0%"; $("progress-label").textContent = "waiting in the queue";
  const es = new EventSource(`/v1/jobs/${jobId}/events`);
  let lastStage = null;
  es.addEventListener("progress", (e) => {
    const ev = JSON.parse(e.data);
    let label = STAGES[ev.stage] || ev.stage;
    if (ev.stage === "queued") label += ` (#${ev.position})`;
    if (ev.stage === "keyframe_pose") label = `reading photo ${Number(ev.index ?? 0) + 1}`;
    if (ev.stage === "generate") {
      label = `sampling the motion — attempt ${Number(ev.attempt || 0) + 1}`;
      if (ev.total) { label += ` · step ${ev.step}/${ev.total}`; $("progress-bar").style.width = `${100 * ev.step / ev.total}%`; }
    }
    $("progress-label").textContent = label;
    const key = ev.stage + (ev.stage === "generate" ? ev.attempt : "") + (ev.index ?? "");
    if (key !== lastStage) { $("progress-steps").appendChild(el("li", null, `${ev.t.toFixed(1)} s — ${label.split(" · ")[0]}`)); lastStage = key; }
    $("progress-steps").scrollTop = 1e6;
    document.body.dataset.progress = ev.stage;
  });
  es.addEventListener("done", async (e) => {
    es.close();
    const { status, reply } = JSON.parse(e.data);
    S.busy = false; $("send").disabled = false;
    setTimeout(() => { if (S.progressJob === jobId) $("progress").hidden = true; },
               Math.max(0, PROGRESS_MIN_MS - (performance.now() - shownAt)));
    if (turn) { turn.status = status; turn.reply = reply; }
    await openThread(S.threadId);
    await refreshThreads();
    if (status !== 200) notice(reply.error || "the run failed");
    else if (reply.question) notice(reply.question, "info");
    document.body.dataset.done = jobId;
  });
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) { S.busy = false; $("send").disabled = false; } };
}

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) { notice("Say what the motion should be first."); return; }
  if (S.busy) { notice("The last message is still being made; wait for it."); return; }
  if (S.photos.some((p) => p.busy)) { notice("A photo is still being read; send when it shows its fit."); return; }
  const body = { text, photos: S.photos.map((p) => ({ id: p.id, time_s: p.time_s })), path_xz: S.path,
                 duration_s: Number($("duration").value) > 0 ? Number($("duration").value) : null };
  try {
    if (!S.threadId) await newThread(true);
    const r = await api("POST", `/v1/threads/${S.threadId}/messages`, body);
    $("text").value = ""; S.photos = []; renderPhotos(); renderTimeline(); saveDraft();  // the path stays drawn
    const data = await api("GET", `/v1/threads/${S.threadId}`); S.turns = data.turns; renderChat();
    follow(r.job, S.turns[S.turns.length - 1]);
    refreshThreads();
  } catch (err) { notice(err.message); }   // the draft (text, photos, path) stays as it was
});
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("composer").requestSubmit(); });
$("text").addEventListener("input", () => saveDraft());

// --------------------------------------------------------------------------- results

function renderResults(P) {
  const dl = $("downloads"), mt = $("metrics"); dl.innerHTML = ""; mt.innerHTML = "";
  if (!P) { dl.appendChild(el("span", "muted", "The files of a motion appear here.")); return; }
  for (const [name, label] of FILES) {
    if (!P.files?.[name]) continue;
    const a = el("a", null, "⬇ " + label); a.href = P.files[name]; a.download = name; a.dataset.file = name; dl.appendChild(a);
  }
  const m = P.metrics || {};
  for (const [k, v] of Object.entries(m)) {
    const tr = el("tr"); tr.appendChild(el("td", null, METRIC_NAMES[k] || k));
    tr.appendChild(el("td", null, Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(1) : v.toFixed(3))); mt.appendChild(tr);
  }
  if (P.attempts?.length) { const tr = el("tr"); tr.appendChild(el("td", null, "attempts (critique loop)")); tr.appendChild(el("td", null, String(P.attempts.length))); mt.appendChild(tr); }
}

// --------------------------------------------------------------------------- health

async function health() {
  try {
    const h = await api("GET", "/v1/health");
    if (h.max_duration_s) { MAX_DURATION = h.max_duration_s; $("duration").max = String(MAX_DURATION); }
    const q = h.queue;
    $("health").textContent = `${h.provider} · ${q.busy}/${q.workers} worker(s) busy · ${q.queued} waiting · ${h.requests} requests`;
  } catch { $("health").textContent = "server unreachable"; }
}
setInterval(health, 3000);

// --------------------------------------------------------------------------- start

(async () => {
  health(); renderTimeline(); renderResults(null);
  const list = await refreshThreads();
  if (S.threadId && list?.some((t) => t.id === S.threadId)) await openThread(S.threadId);
  else { S.threadId = null; renderChat(); loadDraft(); }
  document.body.dataset.studio = "ready";
})();
