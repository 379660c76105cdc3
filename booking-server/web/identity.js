// Who the page acts for, in either of the server's modes (GET /auth says which):
// header mode names the user in X-User-Id (typed into "You are"); jwt mode sends the
// pasted token as Authorization: Bearer and shows the user the server says it names.
// Loaded before app.js, whose state, $, say, api and restoreHold it uses.
"use strict";

// The user the page acts for: the typed id (header mode), or the token's sub (jwt mode).
function userId() {
  return state.auth === "jwt" ? state.me : $("user").value.trim();
}

// How a request names its caller: X-User-Id (header mode) or the bearer token (jwt
// mode; nothing while no token was given, and the server answers token_missing).
function credentials() {
  if (state.auth !== "jwt") return userId() ? { "X-User-Id": userId() } : {};
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

// Header mode: "You are" is a user id, kept in localStorage, made up on the first visit.
function startWithUserId() {
  let user = localStorage.getItem("booking.user");
  if (!user) {
    user = `guest-${Math.random().toString(36).slice(2, 8)}`;
    localStorage.setItem("booking.user", user);
  }
  $("user").value = user;
  $("user").addEventListener("change", async () => {
    const u = userId();
    if (!/^[\x21-\x7e]{1,128}$/.test(u)) {
      say("A user id is 1 to 128 visible characters, without spaces.");
      return;
    }
    localStorage.setItem("booking.user", u);
    say("");
    state.hold = null;
    await restoreHold();
  });
}

// Jwt mode: "You are" takes a token (pasted; kept in sessionStorage, so it leaves with
// the tab), the server says whom it names, and the page shows that user.
async function startWithToken() {
  const input = $("user");
  input.removeAttribute("maxlength");
  input.type = "password";
  input.placeholder = "paste your token";
  input.setAttribute("aria-label", "Your token");
  input.value = sessionStorage.getItem("booking.token") || "";
  await useToken(input.value.trim());
  input.addEventListener("change", async () => {
    state.hold = null;
    if (await useToken(input.value.trim())) await restoreHold();
  });
}

// Asks the server whom `token` names; shows it, or why the token is refused.
async function useToken(token) {
  state.token = token;
  state.me = "";
  const who = $("whoami");
  who.hidden = false;
  if (!token) {
    sessionStorage.removeItem("booking.token");
    who.textContent = "no token: paste one to hold seats";
    return false;
  }
  try {
    const me = await api("GET", "/auth");
    if (!me.user) throw new Error("This token names no user.");
    state.me = me.user;
    sessionStorage.setItem("booking.token", token);
    who.textContent = `signed in as ${me.user}`;
    say("");
    return true;
  } catch (e) {
    // Public reads go on without it: a refused token would refuse them too.
    state.token = "";
    who.textContent = "token refused";
    say(e.message);
    return false;
  }
}
