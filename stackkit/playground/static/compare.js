// Compare: one prompt to several models at once, streaming side by side, then a vote that the server
// stores (POST /v1/arena/votes) and the leaderboard the votes add up to.
import { api } from "./api.js";
import { field, h } from "./dom.js";
import { Answer, checkedValues, modelPicker, samplingFields, streamChat } from "./ui.js";

export function mountCompare(view, shared) {
  const models = modelPicker(shared, { multiple: true });
  const sampling = samplingFields();
  const prompt = h("textarea", { rows: 3, placeholder: "One prompt, several models", "aria-label": "prompt" });
  const go = h("button", { class: "primary", text: "Compare", type: "submit" });
  const grid = h("div", { class: "grid" });
  const votes = h("div", { class: "vote" });
  const board = h("table", { class: "leaderboard" });
  const note = h("p", { class: "note" });

  async function showBoard() {
    try {
      const { data } = await api("arena/leaderboard");
      board.replaceChildren(h("tr", {}, ...["Model", "Rating", "Votes", "Wins", "Losses", "Ties"].map((t) => h("th", { text: t }))),
        ...data.map((s) => h("tr", {}, ...[s.model, s.rating, s.votes, s.wins, s.losses, s.ties].map((v) => h("td", { text: v })))));
    } catch (error) {
      shared.fail(error);
    }
  }

  function voteButtons(chosen, text) {
    const cast = async (winner, label) => {
      for (const b of votes.querySelectorAll("button")) b.disabled = true;
      try {
        await api("arena/votes", { method: "POST", body: { models: chosen, winner, prompt: text } });
        note.textContent = `Vote stored: ${label}.`;
        showBoard();
      } catch (error) {
        note.textContent = `The vote was not stored: ${error.message}`;
      }
    };
    votes.replaceChildren(h("span", { text: "Which answer is best? " }),
      ...chosen.map((m) => h("button", { type: "button", text: m, onclick: () => cast(m, m) })),
      h("button", { type: "button", text: "Tie", onclick: () => cast("tie", "a tie") }),
      h("button", { type: "button", text: "All bad", onclick: () => cast("all_bad", "all bad") }));
  }

  async function compare(e) {
    e.preventDefault();
    const chosen = checkedValues(models);
    const text = prompt.value;
    if (chosen.length < 2) { note.textContent = "Pick at least two models."; return; }
    if (!text.trim()) return;
    note.textContent = "";
    votes.replaceChildren();
    go.disabled = true;
    const answers = chosen.map((m) => new Answer(m));
    grid.style.setProperty("--columns", String(chosen.length));
    grid.replaceChildren(...answers.map((a) => a.el));
    const body = { messages: [{ role: "user", content: text }], ...sampling.read() };
    const results = await Promise.all(chosen.map((m, i) => streamChat({ ...body, model: m }, answers[i])));
    go.disabled = false;
    if (results.every((r) => !r.error)) voteButtons(chosen, text);
  }

  view.append(
    h("aside", { class: "settings" }, models, field("Temperature", sampling.temperature),
      field("Max tokens", sampling.maxTokens)),
    h("div", { class: "conversation" },
      h("form", { class: "composer", onsubmit: compare }, prompt, h("div", { class: "actions" }, go)),
      grid, votes, note, h("h3", { text: "Leaderboard" }), board),
  );
  showBoard();
}
