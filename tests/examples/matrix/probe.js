// Read the rendered matrix page as a reader's browser laid it out, and write what was seen
// into the page as JSON, in a pre element with the id "probe", which `chromium --dump-dom`
// prints. In a frame (phone.html) it hands the JSON to the page around it instead.
(function () {
  "use strict";
  function box(element) {
    const r = element.getBoundingClientRect();
    return { left: r.left, right: r.right, width: r.width, height: r.height };
  }
  function shown(element) {
    const style = getComputedStyle(element);
    const r = element.getBoundingClientRect();
    return style.display !== "none" && style.visibility === "visible" &&
      r.width > 0 && r.height > 0;
  }
  const scroller = document.querySelector(".scroll");
  const seen = {
    viewport: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    scroller: { client: scroller.clientWidth, scroll: scroller.scrollWidth },
    groups: Array.from(document.querySelectorAll("thead th[scope=colgroup]")).map(
      (th) => ({ label: th.innerText, span: th.colSpan, box: box(th) })),
    methods: Array.from(document.querySelectorAll("thead th[scope=col]")).map(
      (th) => th.innerText),
    legend: Array.from(document.querySelectorAll(".legend li")).map((li) => ({
      text: li.innerText,
      colour: getComputedStyle(li.querySelector(".swatch")).backgroundColor,
    })),
    rows: Array.from(document.querySelectorAll("tbody tr")).map((tr) => {
      const th = tr.querySelector("th");
      const statement = th.querySelector(".statement");
      return {
        claim: th.querySelector("code").innerText,
        header: th.innerText,
        statementShown: shown(statement),
        cells: Array.from(tr.querySelectorAll("td")).map((td) => ({
          text: td.innerText,
          span: td.colSpan,
          runtime: td.dataset.runtime,
          colour: getComputedStyle(td).backgroundColor,
          box: box(td),
        })),
      };
    }),
  };
  // Scrolled to its far right, the table must keep the claim column in view.
  scroller.scrollLeft = scroller.scrollWidth;
  const claim = document.querySelector("tbody th");
  seen.scrolled = { scrollLeft: scroller.scrollLeft, claim: box(claim),
                    statementShown: shown(claim.querySelector(".statement")) };
  const text = JSON.stringify(seen);
  if (window.parent !== window) {
    // Inside phone.html's frame: the page around it writes the report.
    window.parent.postMessage(text, "*");
    return;
  }
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = text;
  document.body.appendChild(out);
})();
