// The participant's page: consent, one trial at a time, thanks. State lives on the server
// (GET /api/p/TOKEN): a reload or a later visit resumes at the first unanswered trial.
// A trial can be answered only after both videos have played through (ended, having played
// at least 90 % of their length: seeking to the end does not count).
const token = location.pathname.split("/").filter(Boolean).pop();
const api = `/api/p/${token}`;
const $ = (id) => document.getElementById(id);
const SIDES = ["left", "right"];
let state = null;
let played = { left: false, right: false };

function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = !msg;
}

async function call(path, body) {
  const opt = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(api + path, opt);
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

// The two panels, left and right, from one template: ids video-SIDE, watched-SIDE, likert-SIDE.
for (const side of SIDES) {
  const panel = $("panel").content.firstElementChild.cloneNode(true);
  panel.dataset.side = side;
  panel.querySelector("h3").textContent = side === "left" ? "Left" : "Right";
  panel.querySelector("video").id = `video-${side}`;
  panel.querySelector(".watched").id = `watched-${side}`;
  panel.querySelector(".likert").id = `likert-${side}`;
  $("pair").append(panel);
}

function buildScales() {
  for (const side of SIDES) {
    const box = document.querySelector(`#likert-${side} .scale`);
    box.replaceChildren();
    for (let v = 1; v <= 7; v++) {
      const label = document.createElement("label");
      const input = Object.assign(document.createElement("input"), { type: "radio", name: `rating-${side}`, value: v });
      label.append(input, document.createTextNode(v === 1 ? "1 not at all" : v === 7 ? "7 perfectly" : String(v)));
      box.append(label);
    }
  }
}

function playedEnough(video) {
  let t = 0;
  for (let i = 0; i < video.played.length; i++) t += video.played.end(i) - video.played.start(i);
  return video.duration > 0 && t >= 0.9 * video.duration;
}

function value(name) {
  const el = document.querySelector(`input[name="${name}"]:checked`);
  return el ? el.value : null;
}

function refreshControls() {
  const both = played.left && played.right;
  for (const side of SIDES) {
    $(`likert-${side}`).disabled = !both;
    $(`watched-${side}`).textContent = played[side] ? "watched to the end" : "not yet watched to the end";
    $(`watched-${side}`).classList.toggle("ok", played[side]);
  }
  $("choice").disabled = !both;
  const complete = both && value("rating-left") && value("rating-right") && value("choice");
  $("submit").disabled = !complete;
  $("hint").textContent = !both ? "Watch both videos to the end to answer."
    : complete ? "" : "Rate both videos and choose one.";
}

function render() {
  $("progress").max = state.total;
  $("progress").value = state.position;
  $("progress-text").textContent = `${Math.min(state.position + (state.finished ? 0 : 1), state.total)} of ${state.total}`;
  $("consent").hidden = state.consented;
  $("done").hidden = !state.finished;
  $("trial").hidden = !state.trial;
  if (!state.trial) return;
  const t = state.trial;
  $("request").textContent = t.text;
  $("photos").replaceChildren(...t.photos.map((p, j) => {
    const fig = document.createElement("figure");
    const img = Object.assign(document.createElement("img"), { src: p.url, alt: `photo ${j + 1}` });
    const cap = document.createElement("figcaption");
    cap.textContent = p.time_s == null ? `photo ${j + 1}` : `photo ${j + 1}, at ${p.time_s} s`;
    fig.append(img, cap);
    return fig;
  }));
  played = { left: false, right: false };
  buildScales();
  for (const el of document.querySelectorAll('input[name="choice"]')) el.checked = false;
  for (const side of SIDES) {
    const v = $(`video-${side}`);
    v.src = t.videos[side];
    v.dataset.position = t.position;
  }
  refreshControls();
}

for (const side of SIDES) {
  $(`video-${side}`).addEventListener("ended", (ev) => {
    if (state && state.trial && String(state.trial.position) === ev.target.dataset.position && playedEnough(ev.target)) {
      played[side] = true;
      refreshControls();
    }
  });
}
document.addEventListener("change", (ev) => {
  if (ev.target.id === "agree") $("start").disabled = !ev.target.checked;
  else refreshControls();
});

$("start").addEventListener("click", async () => {
  try {
    state = await call("/consent", { consent: true });
    showError("");
    render();
  } catch (e) { showError(e.message); }
});

$("submit").addEventListener("click", async () => {
  $("submit").disabled = true;
  try {
    state = await call("/answer", {
      position: state.trial.position, rating_left: Number(value("rating-left")),
      rating_right: Number(value("rating-right")), choice: value("choice"), played });
    showError("");
    render();
    window.scrollTo(0, 0);
  } catch (e) { showError(e.message); refreshControls(); }
});

(async () => {
  try {
    state = await call("");
    render();
  } catch (e) { showError(e.message); }
})();
