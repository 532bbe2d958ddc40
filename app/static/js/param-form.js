/* Job params forms generated from each kind's JSON Schema (templates/jobs/_param_fields.html): the fields are read
   back into the params JSON (only what differs from each param's default), checked before a submit (the browser's own
   min / max / step / pattern checks, plus exclusive minimums and JSON fields), and kept in step with a raw JSON editor
   for power users (<details class="raw-json"> holding a <textarea name="params">). */
(function () {
  "use strict";

  function input(box) { return box.querySelector("input, select, textarea"); }
  function live(form) {
    return Array.from(form.querySelectorAll(".param-field")).filter((box) => !box.closest("fieldset:disabled"));
  }

  function read(box) {
    const kind = box.dataset.kind, el = input(box);
    if (kind === "boolean") return el.checked;
    const text = el.value.trim();
    if (!text) return box.dataset.nullable ? null : JSON.parse(box.dataset.default);
    if (kind === "integer") return parseInt(text, 10);
    if (kind === "number") return Number(text);
    if (kind === "int-list") return text.split(",").map((s) => parseInt(s.trim(), 10));
    if (kind === "str-list") return text.split(",").map((s) => s.trim()).filter(Boolean);
    if (kind === "json") return JSON.parse(text);
    return text;
  }

  function write(box, value) {
    const kind = box.dataset.kind, el = input(box);
    if (kind === "boolean") { el.checked = !!value; return; }
    if (value === null || value === undefined) el.value = "";
    else if (kind === "int-list" || kind === "str-list") el.value = value.join(", ");
    else if (kind === "json") el.value = JSON.stringify(value);
    else if (kind === "datetime") el.value = String(value).slice(0, 16);
    else el.value = String(value);
  }

  function getPath(obj, path) {
    return path.split(".").reduce((o, key) => (o && Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined), obj);
  }
  function setPath(obj, path, value) {
    const keys = path.split(".");
    let node = obj;
    for (const key of keys.slice(0, -1)) node = node[key] = node[key] || {};
    node[keys[keys.length - 1]] = value;
  }

  // The browser's checks plus the ones HTML cannot say; false (and the first problem shown at its field) if any.
  function check(form) {
    for (const box of live(form)) {
      const el = input(box);
      el.setCustomValidity("");
      const min = el.dataset.exclusiveMin;
      if (min !== undefined && el.value.trim() !== "" && !(Number(el.value) > Number(min))) {
        el.setCustomValidity("Must be greater than " + min + ".");
      }
      if (box.dataset.kind === "json" && el.value.trim()) {
        try { JSON.parse(el.value); } catch (e) { el.setCustomValidity("Not valid JSON: " + e.message); }
      }
    }
    return form.reportValidity();
  }

  // Only what differs from each param's default, so the job records what was chosen.
  function collect(form) {
    const out = {};
    for (const box of live(form)) {
      const value = read(box);
      // compared as JavaScript writes both (the server wrote the default: 9e-06 and 0.0 are 0.000009 and 0 here)
      if (JSON.stringify(value) !== JSON.stringify(JSON.parse(box.dataset.default))) setPath(out, box.dataset.path, value);
    }
    return out;
  }

  function fill(form, params) {
    const known = new Set(live(form).map((box) => box.dataset.path.split(".")[0]));
    const unknown = Object.keys(params).filter((key) => !known.has(key));
    if (unknown.length) throw new Error("unknown params: " + unknown.join(", "));
    for (const box of live(form)) {
      const value = getPath(params, box.dataset.path);
      write(box, value === undefined ? JSON.parse(box.dataset.default) : value);
    }
  }

  function raw(form) { return form.querySelector("details.raw-json"); }

  /** The params to send, or null after saying (at the field, or in `errorBox`) what is wrong. */
  function params(form, errorBox) {
    const editor = raw(form);
    if (editor && editor.open) {
      try { return JSON.parse(editor.querySelector("textarea").value || "{}"); } catch (e) {
        errorBox.textContent = "params is not valid JSON: " + e.message;
        return null;
      }
    }
    return check(form) ? collect(form) : null;
  }

  /** Fill the raw editor from the fields (after the fields changed, e.g. another kind was chosen). */
  function syncRaw(form) {
    const editor = raw(form);
    if (editor && editor.open) editor.querySelector("textarea").value = JSON.stringify(collect(form), null, 2);
  }

  document.querySelectorAll("form[data-param-form]").forEach((form) => {
    const editor = raw(form);
    if (!editor) return;
    const box = form.querySelector("[role=alert]");
    const text = editor.querySelector("textarea");
    // Both directions happen in the summary's click handler, before the editor opens or closes, not on the toggle
    // event: that comes a task later, and whatever was typed in between (in the editor, or in the fields) would be
    // overwritten. A raw JSON that cannot be applied keeps the editor open and says why.
    editor.querySelector("summary").addEventListener("click", (ev) => {
      if (!editor.open) { text.value = JSON.stringify(collect(form), null, 2); return; }
      try { fill(form, JSON.parse(text.value || "{}")); if (box) box.textContent = ""; } catch (e) {
        ev.preventDefault();
        if (box) box.textContent = "The raw JSON was not applied to the fields: " + e.message;
      }
    });
  });

  window.ranklabParamForm = { params, syncRaw, collect };
})();
