// Precomputed panels: sliders over a few positions whose figures were drawn at build
// time (website/precompute.py). Moving one swaps the PNG; no kernel is involved.
(function () {
  "use strict";
  // The widget renderer typesets a widget's label with MathJax 2's API (MathJax.Hub.Queue);
  // the site loads MathJax 3, which has no Hub: give whatever MathJax object is set one that
  // typesets with MathJax 3's typesetPromise.
  (function () {
    let current = window.MathJax;
    function shim(mj) {
      if (mj && typeof mj === "object" && !mj.Hub) {
        mj.Hub = {
          Queue: function (job) {
            const element = Array.isArray(job) ? job[2] : null;
            if (element && typeof mj.typesetPromise === "function") {
              mj.typesetPromise([element]).catch(() => {});
            }
          },
        };
      }
      return mj;
    }
    Object.defineProperty(window, "MathJax", {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (value) => {
        current = shim(value);
      },
    });
    shim(current);
  })();
  // A control's positions all read with two decimals when any of them is not whole
  // (JSON turns 1.0 into 1).
  function formatter(values) {
    const decimals = values.some((v) => typeof v === "number" && !Number.isInteger(v));
    return (v) => (decimals ? Number(v).toFixed(2) : String(v));
  }
  function build(box) {
    const spec = JSON.parse(box.dataset.spec);
    const root = document.documentElement.dataset.content_root || "";
    const positions = spec.controls.map((c) => c.default);
    const fmts = spec.controls.map((c) => formatter(c.values));
    const title = document.createElement("div");
    title.className = "nf-precomputed-title";
    title.textContent = "Try it here, without a kernel: " + spec.title;
    const note = document.createElement("div");
    note.className = "nf-precomputed-note";
    const count = spec.controls.reduce((n, c) => n * c.values.length, 1);
    note.textContent =
      count + " positions drawn when the site was built, by the panel's own function; " +
      spec.fixed + ".";
    box.append(title, note);
    const row = document.createElement("div");
    row.className = "nf-precomputed-controls";
    box.appendChild(row);
    const img = document.createElement("img");
    img.className = "nf-precomputed-figure";
    const readouts = [];
    function show() {
      spec.controls.forEach((c, k) => {
        readouts[k].textContent = fmts[k](c.values[positions[k]]);
      });
      const key = positions.join("_");
      img.dataset.key = key;
      img.alt = spec.title + ": " + spec.controls
        .map((c, k) => c.label + " = " + fmts[k](c.values[positions[k]])).join(", ");
      img.src = root + spec.base + key + ".png";
    }
    spec.controls.forEach((c, k) => {
      const label = document.createElement("label");
      label.className = "nf-precomputed-control";
      const name = document.createElement("span");
      name.textContent = c.label;
      const input = document.createElement("input");
      input.type = "range";
      input.min = 0;
      input.max = c.values.length - 1;
      input.step = 1;
      input.value = c.default;
      input.dataset.control = c.name;
      input.setAttribute("aria-label", c.label);
      const readout = document.createElement("output");
      readouts.push(readout);
      input.addEventListener("input", () => {
        positions[k] = Number(input.value);
        show();
      });
      label.append(name, input, readout);
      row.appendChild(label);
    });
    box.appendChild(img);
    show();
  }
  function init() {
    document.querySelectorAll(".nf-precomputed").forEach(build);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
