// The console page. It shows what the console's back end (the NoteFlow client) reports; retries,
// stalls and cancel confirmation are decided there, never here.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const COLOURS = ["#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

const state = {
  info: null,
  selected: null,     // the meeting shown (as the API returned it)
  view: null,         // the rendered meeting view (a DocumentFragment's root nodes)
  follow: null,       // the EventSource of the job being followed
  followedJob: null,
  audioUrl: null,
  meetingsToken: "",
  jobsToken: "",
  jobsTokens: [],
};

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the console itself cannot be reached (is `noteflow console` still running?)");
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function formatTime(seconds) {
  if (!isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  const rest = (s - m * 60).toFixed(1).padStart(4, "0");
  return `${m}:${rest}`;
}

function formatDuration(seconds) {
  if (!seconds) return "no audio";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

function formatDate(epochSeconds) {
  if (!epochSeconds) return "";
  return new Date(epochSeconds * 1000).toLocaleString();
}

function setConnection(text, bad) {
  const line = $("#connection");
  line.textContent = text || "";
  line.hidden = !text;
  line.classList.toggle("bad", !!bad);
}

// ---- server info and the memory-mode banner ----

async function loadInfo() {
  try {
    state.info = await api("/api/info");
    $("#server-label").textContent = state.info.in_process
      ? `job service in this console (${state.info.storage_mode})`
      : `job service ${state.info.server} (${state.info.storage_mode})`;
    const banner = $("#banner");
    if (state.info.memory_only) {
      banner.textContent = "This server keeps jobs in memory only: every meeting and job is lost when it stops or restarts.";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    setConnection("");
  } catch (e) {
    setConnection(`The job service cannot be reached: ${e.message}`, true);
  }
}

// ---- meetings ----

function meetingFacts(meeting) {
  const job = meeting.latest_job;
  const parts = [formatDuration(meeting.duration_seconds)];
  parts.push(job ? job.status.toLowerCase() : "not diarized");
  return parts.join(" · ");
}

async function loadMeetings(append = false) {
  let page;
  try {
    page = await api(`/api/meetings?page_token=${encodeURIComponent(append ? state.meetingsToken : "")}`);
  } catch (e) {
    setConnection(`Cannot list meetings: ${e.message}`, true);
    return;
  }
  const list = $("#meeting-list");
  if (!append) list.replaceChildren();
  for (const meeting of page.meetings) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.meeting = meeting.id;
    if (state.selected && state.selected.id === meeting.id) button.setAttribute("aria-current", "true");
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = meeting.title || "(untitled)";
    const facts = document.createElement("span");
    facts.className = "facts";
    facts.textContent = meetingFacts(meeting);
    button.append(title, facts);
    button.addEventListener("click", () => selectMeeting(meeting.id));
    item.append(button);
    list.append(item);
  }
  if (!append && page.meetings.length === 0) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = "No meetings yet.";
    list.append(item);
  }
  state.meetingsToken = page.next_page_token;
  $("#meetings-more").hidden = !page.next_page_token;
}

function uploadFile(file) {
  const status = $("#upload-status");
  const progress = $("#upload-progress");
  status.classList.remove("error");
  status.textContent = `Uploading ${file.name}…`;
  progress.hidden = false;
  progress.value = 0;
  const request = new XMLHttpRequest();
  request.open("POST", `/api/meetings?name=${encodeURIComponent(file.name)}`);
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) {
      progress.value = Math.round((e.loaded / e.total) * 100);
      if (e.loaded === e.total) status.textContent = `Checking ${file.name} on the server…`;
    }
  });
  request.addEventListener("load", async () => {
    progress.hidden = true;
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
    if (request.status >= 200 && request.status < 300 && body) {
      status.textContent = `${file.name}: ${formatDuration(body.duration_seconds)} uploaded.`;
      await loadMeetings();
      await selectMeeting(body.meeting.id);
    } else {
      status.classList.add("error");
      status.textContent = `${file.name} was not accepted: ${(body && body.error) || request.statusText || "unknown error"}`;
    }
  });
  request.addEventListener("error", () => {
    progress.hidden = true;
    status.classList.add("error");
    status.textContent = `${file.name} could not be sent: the console is not reachable.`;
  });
  request.send(file);
}

function setupDrop() {
  const drop = $("#drop");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    if (input.files.length) uploadFile(input.files[0]);
    input.value = "";
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) uploadFile(e.dataTransfer.files[0]);
  });
}

// ---- one meeting ----

function stopFollowing() {
  if (state.follow) state.follow.close();
  state.follow = null;
  state.followedJob = null;
}

async function selectMeeting(id) {
  stopFollowing();
  let meeting;
  try {
    meeting = await api(`/api/meetings/${id}`);
  } catch (e) {
    $("#meeting-detail").replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: e.message }));
    return;
  }
  state.selected = meeting;
  for (const button of document.querySelectorAll("#meeting-list button")) {
    button.toggleAttribute("aria-current", button.dataset.meeting === id);
    if (button.dataset.meeting === id) button.setAttribute("aria-current", "true");
  }
  renderMeeting(meeting);
  const job = meeting.latest_job;
  if (job) {
    showJob(job);
    if (!TERMINAL.has(job.status)) followJob(job.job_id);
    else if (job.status === "COMPLETED") await showResult(job.job_id);
  }
}

function renderMeeting(meeting) {
  const detail = $("#meeting-detail");
  const fragment = $("#meeting-template").content.cloneNode(true);
  detail.replaceChildren(fragment);
  $(".m-title", detail).textContent = meeting.title || "(untitled)";
  $(".m-facts", detail).textContent =
    `${formatDuration(meeting.duration_seconds)} · added ${formatDate(meeting.created_at)}`;

  const del = $(".m-delete", detail);
  const confirm = $(".confirm", detail);
  del.addEventListener("click", () => { confirm.hidden = false; del.hidden = true; $(".m-delete-no", detail).focus(); });
  $(".m-delete-no", detail).addEventListener("click", () => { confirm.hidden = true; del.hidden = false; del.focus(); });
  $(".m-delete-yes", detail).addEventListener("click", async () => {
    try {
      await api(`/api/meetings/${meeting.id}`, { method: "DELETE" });
      stopFollowing();
      state.selected = null;
      detail.replaceChildren(Object.assign(document.createElement("p"), { className: "empty", textContent: `Deleted ${meeting.title}.` }));
      await loadMeetings();
    } catch (e) {
      $(".m-facts", detail).textContent = `Could not delete: ${e.message}`;
    }
  });

  const form = $(".start-form", detail);
  if (!meeting.has_audio) form.hidden = true;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const mode = form.querySelector("input[name=count]:checked").value;
    const body = {};
    if (mode === "exact") body.speakers = Number($(".n-exact", form).value);
    if (mode === "range") {
      body.min_speakers = Number($(".n-min", form).value);
      body.max_speakers = Number($(".n-max", form).value);
    }
    const start = $(".start", form);
    start.disabled = true;
    try {
      const started = await api(`/api/meetings/${meeting.id}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      $(".result", detail).hidden = true;
      showJob(started.job);
      if (started.warnings && started.warnings.length) $(".job-note", detail).textContent = started.warnings.join(" ");
      followJob(started.job_id);
    } catch (err) {
      showJobTrouble(`Could not start: ${err.message}`);
    } finally {
      start.disabled = false;
    }
  });
  $(".cancel", detail).addEventListener("click", cancelJob);
}

function jobSection() {
  return $("#meeting-detail .job");
}

function showJob(job) {
  const section = jobSection();
  if (!section) return;
  section.hidden = false;
  section.dataset.job = job.job_id;
  const badge = $(".job-state", section);
  badge.textContent = job.status;
  badge.dataset.state = job.status;
  $(".job-attempt", section).textContent = `attempt ${job.attempt}`;
  const times = [];
  if (job.started_at) times.push(`started ${new Date(job.started_at * 1000).toLocaleTimeString()}`);
  if (job.finished_at) times.push(`ended ${new Date(job.finished_at * 1000).toLocaleTimeString()}`);
  if (job.started_at && job.finished_at) times.push(`took ${(job.finished_at - job.started_at).toFixed(1)} s`);
  $(".job-times", section).textContent = times.join(" · ");
  const percent = job.status === "COMPLETED" ? 100 : Math.round(job.progress_percent);
  const bar = $(".bar", section);
  bar.setAttribute("aria-valuenow", String(percent));
  $(".bar-fill", section).style.width = `${percent}%`;
  const cancel = $(".cancel", section);
  if (!cancel.dataset.busy) {
    cancel.hidden = TERMINAL.has(job.status);
    cancel.disabled = false;
    cancel.textContent = "Cancel";
  }
  if (job.status === "FAILED" || job.status === "CANCELLED") {
    $(".job-note", section).textContent = job.error_message || "";
  }
}

function showJobNote(text) {
  const section = jobSection();
  if (section) $(".job-note", section).textContent = text;
}

function showJobTrouble(text) {
  const section = jobSection();
  if (section) {
    section.hidden = false;
    $(".job-trouble", section).textContent = text;
  }
}

function followJob(jobId) {
  stopFollowing();
  state.followedJob = jobId;
  const source = new EventSource(`/api/jobs/${jobId}/events`);
  state.follow = source;
  source.addEventListener("message", (message) => onJobEvent(jobId, JSON.parse(message.data)));
  source.addEventListener("error", () => {
    // The event stream ends after the job's last event (and is closed then); an error before that
    // means the console itself went away. EventSource reconnects on its own.
    if (state.follow === source) showJobTrouble("the console lost its connection; reconnecting…");
  });
}

async function onJobEvent(jobId, event) {
  if (state.followedJob !== jobId) return;
  const max = state.info ? state.info.max_retries : "?";
  switch (event.event) {
    case "progress":
      showJobTrouble("");
      showJob(event.job);
      break;
    case "retrying":
      showJobTrouble(`reconnecting (try ${event.attempt} of ${max})… ${event.error}`);
      break;
    case "polling":
      showJobNote(`live updates unavailable; checking the job regularly (${event.reason})`);
      break;
    case "warning":
      showJobNote(event.message);
      break;
    case "completed":
      stopFollowing();
      showJobTrouble("");
      await refreshJob(jobId);
      await showResult(jobId);
      await loadMeetings();
      break;
    case "failed":
    case "cancelled":
    case "timed_out":
      stopFollowing();
      showJobTrouble("");
      await refreshJob(jobId);
      if (event.message) showJobNote(event.message);
      await loadMeetings();
      break;
    case "gave_up":
      stopFollowing();
      if (/no progress/.test(event.error)) {
        showJobTrouble(`stalled: ${event.error}`);
      } else if (/unreachable/.test(event.error)) {
        // The client gave up; the page keeps an eye out and follows again once the server is back.
        showJobTrouble("the server is unreachable; the job may still be running.");
        showJobNote(`${event.error} Checking again every ${RECHECK_SECONDS} s.`);
        scheduleRecheck(jobId);
      } else {
        showJobTrouble(event.error);
      }
      offerRefollow(jobId);
      break;
    default:
      break;
  }
}

const RECHECK_SECONDS = 5;

function scheduleRecheck(jobId) {
  setTimeout(async () => {
    if (state.followedJob !== null || !state.selected) return;
    const section = jobSection();
    if (!section || section.dataset.job !== jobId) return;
    try {
      await api(`/api/jobs/${jobId}`);
    } catch (e) {
      scheduleRecheck(jobId);
      return;
    }
    const button = $(".refollow", section);
    if (button) button.remove();
    showJobNote("");
    followJob(jobId);
  }, RECHECK_SECONDS * 1000);
}

function offerRefollow(jobId) {
  const section = jobSection();
  if (!section || $(".refollow", section)) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "refollow";
  button.textContent = "Check again";
  button.addEventListener("click", () => {
    button.remove();
    showJobTrouble("");
    followJob(jobId);
  });
  $(".job-trouble", section).after(button);
}

async function refreshJob(jobId) {
  try {
    showJob(await api(`/api/jobs/${jobId}`));
  } catch (e) {
    showJobTrouble(e.message);
  }
}

async function cancelJob() {
  const section = jobSection();
  const jobId = section && section.dataset.job;
  if (!jobId) return;
  const button = $(".cancel", section);
  // The cancel's answer is the confirmed final state: show that, not the stream's own ending.
  stopFollowing();
  button.dataset.busy = "1";
  button.disabled = true;
  button.textContent = "cancelling…";
  $(".job-state", section).textContent = "cancelling…";
  try {
    const answer = await api(`/api/jobs/${jobId}/cancel`, { method: "POST" });
    delete button.dataset.busy;
    showJob(answer.job);
    showJobNote(answer.cancelled
      ? "Cancelled (confirmed by the server)."
      : `The job had already ended: ${answer.job.status} (confirmed by the server).`);
    if (answer.job.status === "COMPLETED") await showResult(jobId);
    await loadMeetings();
  } catch (e) {
    delete button.dataset.busy;
    button.disabled = false;
    button.textContent = "Cancel";
    showJobTrouble(`Cancel not confirmed: ${e.message}`);
    followJob(jobId);
  }
}

// ---- the result ----

async function loadAudio(meeting) {
  if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
  state.audioUrl = null;
  if (!meeting.playable) return null;
  // A blob URL lets the player seek anywhere without range requests.
  const response = await fetch(`/api/meetings/${meeting.id}/audio`);
  if (!response.ok) return null;
  state.audioUrl = URL.createObjectURL(await response.blob());
  return state.audioUrl;
}

async function showResult(jobId) {
  const detail = $("#meeting-detail");
  const section = $(".result", detail);
  const meeting = state.selected;
  if (!section || !meeting) return;
  let result;
  try {
    result = await api(`/api/jobs/${jobId}/result`);
  } catch (e) {
    showJobTrouble(`Cannot read the result: ${e.message}`);
    return;
  }
  // Segment labels change with the result: read the meeting again.
  try { state.selected = await api(`/api/meetings/${meeting.id}`); } catch (e) { /* keep the old one */ }
  section.hidden = false;
  section.dataset.job = jobId;
  const speakers = [...result.speaker_ids];
  for (const turn of result.turns) if (!speakers.includes(turn.speaker)) speakers.push(turn.speaker);
  speakers.sort();
  const duration = Math.max(state.selected.duration_seconds || 0, ...result.turns.map((t) => t.end), 0.001);
  const colour = (speaker) => COLOURS[speakers.indexOf(speaker) % COLOURS.length];

  const timeline = $(".timeline", section);
  timeline.replaceChildren();
  const playheads = [];
  for (const speaker of speakers) {
    const lane = document.createElement("div");
    lane.className = "lane";
    lane.dataset.speaker = speaker;
    const label = document.createElement("span");
    label.className = "lane-label";
    label.textContent = speaker;
    const track = document.createElement("div");
    track.className = "lane-track";
    for (const turn of result.turns.filter((t) => t.speaker === speaker)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "turn";
      button.dataset.start = String(turn.start);
      button.dataset.end = String(turn.end);
      button.style.left = `${(turn.start / duration) * 100}%`;
      button.style.width = `${((turn.end - turn.start) / duration) * 100}%`;
      button.style.background = colour(speaker);
      button.title = `${speaker} ${formatTime(turn.start)}–${formatTime(turn.end)}`;
      button.setAttribute("aria-label", `${speaker} from ${formatTime(turn.start)} to ${formatTime(turn.end)}: play from here`);
      button.addEventListener("click", () => playFrom(turn.start));
      track.append(button);
    }
    const playhead = document.createElement("div");
    playhead.className = "playhead";
    track.append(playhead);
    playheads.push(playhead);
    lane.append(label, track);
    timeline.append(lane);
  }

  const player = $(".player", section);
  const url = await loadAudio(state.selected);
  $(".no-audio", section).hidden = !!url;
  player.hidden = !url;
  if (url) player.src = url;
  const movePlayhead = () => {
    const left = `${Math.min(100, (player.currentTime / duration) * 100)}%`;
    for (const playhead of playheads) playhead.style.left = left;
  };
  player.addEventListener("timeupdate", movePlayhead);
  player.addEventListener("seeked", movePlayhead);
  const tick = () => { movePlayhead(); if (!player.paused) requestAnimationFrame(tick); };
  player.addEventListener("play", () => requestAnimationFrame(tick));
  movePlayhead();

  const talk = $(".talk-time tbody", section);
  talk.replaceChildren();
  for (const speaker of speakers) {
    const seconds = result.turns.filter((t) => t.speaker === speaker).reduce((sum, t) => sum + (t.end - t.start), 0);
    const row = document.createElement("tr");
    row.dataset.speaker = speaker;
    const who = document.createElement("td");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(speaker);
    who.append(swatch, document.createTextNode(speaker));
    const time = document.createElement("td");
    time.textContent = formatTime(seconds);
    const share = document.createElement("td");
    share.textContent = `${Math.round((seconds / duration) * 100)} %`;
    row.append(who, time, share);
    talk.append(row);
  }
  $(".dl-rttm", section).href = `/api/jobs/${jobId}/result.rttm`;
  $(".dl-json", section).href = `/api/jobs/${jobId}/result.json`;

  const transcript = $(".transcript", section);
  transcript.replaceChildren();
  for (const segment of state.selected.segments) {
    const item = document.createElement("li");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = segment.speaker || "?";
    if (segment.speaker) who.style.color = colour(segment.speaker);
    const when = document.createElement("button");
    when.type = "button";
    when.textContent = formatTime(segment.start);
    when.addEventListener("click", () => playFrom(segment.start));
    item.append(when, document.createTextNode(" "), who, document.createTextNode(segment.text));
    transcript.append(item);
  }
  $(".no-transcript", section).hidden = state.selected.segments.length > 0;
}

function playFrom(seconds) {
  const player = $("#meeting-detail .player");
  if (!player || !player.src) return;
  player.currentTime = seconds;
  player.play().catch(() => { /* autoplay may be refused; the position is set */ });
}

// ---- jobs ----

async function loadJobs() {
  const filter = $("#job-filter").value;
  let page;
  try {
    page = await api(`/api/jobs?status=${filter}&page_token=${encodeURIComponent(state.jobsToken)}`);
  } catch (e) {
    setConnection(`Cannot list jobs: ${e.message}`, true);
    return;
  }
  const body = $("#jobs-table tbody");
  body.replaceChildren();
  for (const job of page.jobs) {
    const row = document.createElement("tr");
    row.dataset.job = job.job_id;
    const cells = [
      formatDate(job.created_at),
      job.job_id,
      job.status,
      String(job.attempt),
      `${Math.round(job.status === "COMPLETED" ? 100 : job.progress_percent)} %`,
    ];
    cells.forEach((text, i) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (i === 1) cell.className = "mono";
      row.append(cell);
    });
    const open = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Open";
    button.setAttribute("aria-label", `open the meeting of job ${job.job_id}`);
    button.addEventListener("click", () => { showView("meetings"); selectMeeting(job.meeting_id); });
    open.append(button);
    row.append(open);
    body.append(row);
  }
  $("#jobs-empty").hidden = page.jobs.length > 0;
  $("#jobs-next").hidden = !page.next_page_token;
  $("#jobs-first").hidden = !state.jobsToken;
  $("#jobs-next").onclick = () => { state.jobsToken = page.next_page_token; loadJobs(); };
}

function showView(name) {
  $("#meetings-view").hidden = name !== "meetings";
  $("#jobs-view").hidden = name !== "jobs";
  $("#tab-meetings").setAttribute("aria-pressed", String(name === "meetings"));
  $("#tab-jobs").setAttribute("aria-pressed", String(name === "jobs"));
  if (name === "jobs") { state.jobsToken = ""; loadJobs(); }
  if (name === "meetings") loadMeetings();
}

function setup() {
  setupDrop();
  $("#tab-meetings").addEventListener("click", () => showView("meetings"));
  $("#tab-jobs").addEventListener("click", () => showView("jobs"));
  $("#meetings-more").addEventListener("click", () => loadMeetings(true));
  $("#job-filter").addEventListener("change", () => { state.jobsToken = ""; loadJobs(); });
  $("#jobs-first").addEventListener("click", () => { state.jobsToken = ""; loadJobs(); });
  loadInfo();
  loadMeetings();
  // The banner and reachability stay current (a server restarted in memory mode shows it).
  setInterval(loadInfo, 5000);
}

setup();
