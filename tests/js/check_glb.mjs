// Reads a motion.glb the way a web page does and prints one JSON report on stdout:
//   node tests/js/check_glb.mjs FILE.glb NODE_MODULES_DIR
// - "validator": the Khronos glTF validator's report (issues with their severities);
// - "three": what three.js's GLTFLoader makes of it: the skinned mesh, its bones, the animation,
//   and per frame (time = frame / fps, played through an AnimationMixer) each bone's world
//   position and the rest joints skinned by the mesh's own bind matrices, plus the lowest point
//   of the whole skinned mesh.
// Used by tests/integration/test_export_glb.py; the node packages come from .node/ (scripts/install_node_tools.sh).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [file, modules] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(join(modules, p)).href);
const validator = (await load('gltf-validator/index.js')).default;
const THREE = await load('three/build/three.module.js');
const { GLTFLoader } = await load('three/examples/jsm/loaders/GLTFLoader.js');

const bytes = readFileSync(file);
const report = await validator.validateBytes(new Uint8Array(bytes), { maxIssues: 100 });

const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const gltf = await new GLTFLoader().parseAsync(buffer, '');
const scene = gltf.scene;
const meshes = [];
scene.traverse((o) => { if (o.isSkinnedMesh) meshes.push(o); });
const mesh = meshes[0];
const bones = mesh.skeleton.bones;
const clip = gltf.animations[0];
const fps = gltf.parser.json.extras.fps;
const frames = Math.round(clip.duration * fps) + 1;
const mixer = new THREE.AnimationMixer(scene);
const action = mixer.clipAction(clip);
action.setLoop(THREE.LoopOnce, 1);  // at t = duration a repeating action would wrap to frame 0
action.clampWhenFinished = true;
action.play();

// A rest joint is where its inverse bind matrix puts the joint's origin: the inverse's translation.
const restJoints = mesh.skeleton.boneInverses.map((m) => new THREE.Vector3().setFromMatrixPosition(m.clone().invert()));
const out = { bones: [], skinned: [], lowest: [] };
const v = new THREE.Vector3();
const m = new THREE.Matrix4();
for (let f = 0; f < frames; f++) {
  mixer.setTime(f / fps);
  scene.updateMatrixWorld(true);
  mesh.skeleton.update();
  out.bones.push(bones.map((b) => b.getWorldPosition(new THREE.Vector3()).toArray()));
  // three's skinning of a point bound with weight 1 to bone j: bindMatrixInverse · matrixWorld_j · boneInverse_j · bindMatrix.
  out.skinned.push(restJoints.map((p, j) => {
    m.multiplyMatrices(bones[j].matrixWorld, mesh.skeleton.boneInverses[j]);
    v.copy(p).applyMatrix4(mesh.bindMatrix).applyMatrix4(m).applyMatrix4(mesh.bindMatrixInverse).applyMatrix4(mesh.matrixWorld);
    return v.toArray();
  }));
  let low = Infinity;
  for (const child of meshes) {
    const n = child.geometry.attributes.position.count;
    for (let i = 0; i < n; i += 7) { child.getVertexPosition(i, v); v.applyMatrix4(child.matrixWorld); low = Math.min(low, v.y); }
  }
  out.lowest.push(low);
}
console.log(JSON.stringify({
  validator: { numErrors: report.issues.numErrors, numWarnings: report.issues.numWarnings, messages: report.issues.messages },
  three: { meshes: meshes.length, boneNames: bones.map((b) => b.name), clip: clip.name, duration: clip.duration, fps, frames,
           tracks: clip.tracks.length, ...out },
}));
