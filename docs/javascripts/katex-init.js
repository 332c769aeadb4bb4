// Render the maths that pymdownx.arithmatex (generic mode) leaves in the page as
// <span class="arithmatex">\(...\)</span> and <div class="arithmatex">\[...\]</div>,
// with the KaTeX copy vendored in docs/javascripts/katex (no CDN: the site renders offline).
function renderArithmatex(root) {
  root.querySelectorAll(".arithmatex").forEach((el) => {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => renderArithmatex(body)); // Material: every page load
} else {
  document.addEventListener("DOMContentLoaded", () => renderArithmatex(document.body));
}
