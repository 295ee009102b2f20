"use strict";
// The ask page (docs/ask.md): questions go to POST /v1/workspaces/<id>/ask with the workspace's bearer
// token; suggested questions and the history come from GET .../suggestions and .../history with the
// same token. The token is kept in this tab's sessionStorage only. Every text from an answer is set
// as text (textContent), never as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const STORED = "abos-ask-session";
  let session = JSON.parse(sessionStorage.getItem(STORED) || "null"); // {workspace, token, conversation}

  class SignedOut extends Error {}

  function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function save() {
    sessionStorage.setItem(STORED, JSON.stringify(session));
  }

  async function call(path, body) {
    const headers = { Authorization: `Bearer ${session.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`/v1/workspaces/${encodeURIComponent(session.workspace)}/${path}`, {
      method: body === undefined ? "GET" : "POST", headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      signOut("The workspace ID or token is not right.");
      throw new SignedOut();
    }
    return response;
  }

  function show(signedIn) {
    $("sign-in").hidden = signedIn;
    $("asking").hidden = !signedIn;
    $("panels").hidden = !signedIn;
    $("signed-in").hidden = !signedIn;
    if (signedIn) $("workspace-shown").textContent = session.workspace;
  }

  function signOut(reason) {
    session = null;
    sessionStorage.removeItem(STORED);
    $("answer").hidden = true;
    $("token").value = "";
    $("sign-in-error").textContent = reason || "";
    $("sign-in-error").hidden = !reason;
    show(false);
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function questionButton(question, onClick) {
    const button = element("button", question, "link");
    button.type = "button";
    button.addEventListener("click", onClick || (() => ask(question)));
    return button;
  }

  function render(answer) {
    const box = $("answer");
    box.className = answer.status;
    box.dataset.status = answer.status;
    $("answer-text").textContent = answer.text;

    const table = $("answer-table");
    const head = table.tHead, body = table.tBodies[0];
    head.replaceChildren();
    body.replaceChildren();
    if (answer.columns.length) {
      const row = head.insertRow();
      answer.columns.forEach((column) => row.appendChild(element("th", column)));
      answer.rows.forEach((cells) => {
        const tr = body.insertRow();
        cells.forEach((cell) => tr.appendChild(element("td", String(cell))));
      });
    }
    table.hidden = !answer.columns.length;

    // a series' chart: its path on this server (the page talks to nothing else)
    const chart = $("answer-chart");
    if (answer.chart) {
      chart.src = new URL(answer.chart, location.href).pathname;
      chart.alt = `Chart: ${answer.text}`;
    } else {
      chart.removeAttribute("src");
    }
    chart.hidden = !answer.chart;

    const options = $("answer-options");
    const choices = options.querySelector(".choices");
    choices.replaceChildren();
    $("options-label").textContent = answer.status === "clarify" ? "Did you mean:" : "You can ask about:";
    answer.options.forEach((option) => choices.appendChild(questionButton(option, () => {
      $("question").value = `${option} `;
      $("question").focus();
    })));
    options.hidden = !answer.options.length;

    const cited = answer.citations || {};
    const list = $("answer-citations");
    list.replaceChildren();
    const cite = (name, text) => { list.appendChild(element("dt", name)); list.appendChild(element("dd", text)); };
    Object.entries(cited.definitions || {}).forEach(([name, text]) => cite(name, text));
    if (cited.range) cite("Range", `${cited.range} (${cited.timezone})`);
    if (cited.comparison) cite("Compared with", cited.comparison);
    if (cited.tables) cite("Tables read", cited.tables.join(", "));
    if (cited.range) cite("Data through", cited.data_through || "no data");
    if (cited.last_sync) {
      const syncs = Object.entries(cited.last_sync).map(([source, when]) => `${source} ${when || "never"}`);
      cite("Last sync", syncs.join(", ") || "none");
    }
    list.hidden = !list.children.length;
    box.hidden = false;
  }

  async function ask(question) {
    $("question").value = question;
    $("ask-error").hidden = true;
    $("ask-button").disabled = true;
    try {
      const response = await call("ask", { question, conversation: session.conversation });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
      render(body);
      loadHistory();
    } catch (error) {
      if (error instanceof SignedOut) return;
      $("ask-error").textContent = `No answer: ${error.message}`;
      $("ask-error").hidden = false;
    } finally {
      $("ask-button").disabled = false;
    }
  }

  // A panel whose endpoint this server does not have (404) stays hidden.
  async function loadPanel(id, path, key, item) {
    const panel = $(id);
    try {
      const response = await call(path);
      if (!response.ok) { panel.hidden = true; return; }
      const list = panel.querySelector("ul, ol");
      list.replaceChildren(...(await response.json())[key].map(item));
      panel.hidden = false;
    } catch (error) {
      if (!(error instanceof SignedOut)) panel.hidden = true;
    }
  }

  function loadSuggestions() {
    return loadPanel("suggestions", "suggestions", "suggestions", (suggestion) => {
      const li = element("li");
      li.append(questionButton(suggestion.question), element("span", suggestion.why, "why"));
      return li;
    });
  }

  function loadHistory() {
    return loadPanel("history", "history?limit=20", "questions", (asked) => {
      const li = element("li");
      const when = new Date(asked.asked_at).toLocaleString();
      li.append(questionButton(asked.question), element("span", `${when} · ${asked.status}`, "when"));
      return li;
    });
  }

  function start() {
    show(true);
    $("question").focus();
    loadSuggestions();
    loadHistory();
  }

  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    session = { workspace: $("workspace").value.trim(), token: $("token").value.trim(), conversation: randomId() };
    save();
    $("sign-in-error").hidden = true;
    start();
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (question) ask(question);
  });
  $("new-conversation").addEventListener("click", () => {
    session.conversation = randomId();
    save();
    $("answer").hidden = true;
    $("question").value = "";
    $("question").focus();
  });
  $("sign-out").addEventListener("click", () => signOut());

  const asked = new URLSearchParams(location.search).get("workspace");
  if (asked) $("workspace").value = asked;
  if (session && (!asked || asked === session.workspace)) start(); else show(false);
})();
