// The waiting room on the seat-map page: on a queued show, "Join the queue", then the
// buyer's position and estimated wait as the server pushes them, then the seat map
// once admitted, with the allowance (max_seats, seats taken). Plain functions over
// app.js's `state`, loaded before app.js (they run only once it is).

// The watcher of the caller's entry (an AbortController), and the allowance's timer.
let queueWatch = null;
let queueTimer = null;

function queueStop() {
  if (queueWatch) queueWatch.abort();
  queueWatch = null;
  if (queueTimer) clearInterval(queueTimer);
  queueTimer = null;
}

// Shows the map and panel, or the waiting room instead.
function showMap(visible) {
  $("stage").hidden = !visible;
  $("panel").hidden = !visible;
  $("queue").hidden = visible;
}

function waitText(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return `about ${Math.max(1, seconds)} second${seconds === 1 ? "" : "s"}`;
  const m = Math.round(seconds / 60);
  return `about ${m} minute${m === 1 ? "" : "s"}`;
}

// What a queue/me body means to the buyer, in a sentence.
function queueText(me) {
  if (me.state === "waiting" && me.position == null) {
    const open = state.sale && state.sale.sales_start ? ` at ${new Date(state.sale.sales_start).toLocaleString()}` : "";
    return `You are in the queue. Places are drawn at random when sales open${open}: arriving early gives no advantage.`;
  }
  if (me.state === "waiting") {
    return `You are number ${me.position} in the queue (${me.ahead} ahead of you). Estimated wait: ${waitText(me.estimated_wait_seconds)}.`;
  }
  return "";
}

// The allowance line of the panel, while the buyer is admitted (or was).
function renderAllowance(me) {
  const box = $("allowance");
  if (!me) { box.hidden = true; return; }
  const until = new Date(me.admission_expires_at).toLocaleTimeString();
  box.textContent = me.state === "admitted"
    ? `It is your turn until ${until}: you may have up to ${me.max_seats} seats (${me.seats_taken} taken).`
    : `Your turn ended at ${until}. You can still confirm a hold you have.`;
  box.hidden = false;
}

// On opening a show: true when the map may load now (no queue, or admitted); else the
// waiting room is shown and the map loads once the buyer is admitted.
async function queueGate(show) {
  queueStop();
  state.queue = show.queue || null;
  renderAllowance(null);
  if (!state.queue) { showMap(true); return true; }
  state.limit = Math.min(state.limit || Infinity, state.queue.max_seats);
  let me = null;
  try {
    me = await api("GET", `/shows/${show.id}/queue/me`);
  } catch (e) {
    if (e.code !== "not_in_queue") throw e;
  }
  return queueShow(me);
}

// Shows where the buyer is; true when admitted (or expired): the map is theirs.
function queueShow(me) {
  if (me && me.state !== "waiting") {
    showMap(true);
    renderAllowance(me);
    if (me.state === "admitted" && !queueTimer) {
      // The allowance's count follows the buyer's holds; the end of the turn shows.
      const show = state.show;
      queueTimer = setInterval(async () => {
        if (state.show !== show) return;
        try { renderAllowance(await api("GET", `/shows/${show}/queue/me`)); } catch (_) { /* next time */ }
      }, 5000);
    }
    return true;
  }
  showMap(false);
  $("queue-join").hidden = Boolean(me);
  $("queue-text").textContent = me
    ? queueText(me)
    : `This show sells through a waiting room. Join the queue: when it is your turn, the seat map opens for you for ${state.queue.admission_minutes} minutes, with up to ${state.queue.max_seats} seats.`;
  if (me) queueFollow();
  return false;
}

async function queueJoin() {
  try {
    const me = await api("POST", `/shows/${state.show}/queue`);
    if (queueShow(me)) await queueAdmitted();
  } catch (e) {
    say(explain(e, {}, ""));
  }
}

// Admitted while the page waited: the map opens.
async function queueAdmitted() {
  // Sales opened while the page waited: what it read of the window then is old.
  state.sale = await api("GET", `/shows/${state.show}`);
  renderSale(false);
  await loadMap();
  await restoreHold();
  say("It is your turn: choose your seats.", true);
}

// Follows the caller's entry on /shows/{id}/queue/me/events. EventSource cannot send
// the caller's credentials (X-User-Id or a bearer token), so the stream is read with
// fetch; it ends once admitted, and is opened again a second after it ends early (a
// server restart, say).
function queueFollow() {
  if (queueWatch) return;
  const show = state.show;
  const watch = new AbortController();
  queueWatch = watch;
  (async () => {
    let admitted = false;
    try {
      const res = await fetch(`/shows/${show}/queue/me/events`, {
        headers: credentials(), signal: watch.signal,
      });
      if (!res.ok || !res.body) throw new Error(`queue stream: ${res.status}`);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data || state.show !== show) continue;
          const me = JSON.parse(data);
          if (queueShow(me)) admitted = true;
        }
      }
    } catch (_) {
      if (watch.signal.aborted) return;
    }
    if (queueWatch === watch) queueWatch = null;
    if (state.show !== show || watch.signal.aborted) return;
    if (admitted) {
      await queueAdmitted().catch((e) => say(e.message));
    } else {
      setTimeout(() => { if (state.show === show && !$("queue").hidden) queueFollow(); }, 1000);
    }
  })();
}

// The queue's refusals, in the buyer's words (null: not one of them).
function queueExplain(e, nothing) {
  const d = e.data || {};
  if (e.code === "queue_max_seats") {
    return `While it is your turn you can have at most ${d.limit} seats and you have ${d.current}. ${nothing}`;
  }
  if (e.code === "admission_expired") return `Your turn in the queue has ended. ${nothing}`;
  if (e.code === "not_admitted") return `This show sells through its queue: join it and wait for your turn. ${nothing}`;
  return null;
}
