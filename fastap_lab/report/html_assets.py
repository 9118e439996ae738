"""The HTML report's inline style sheet and table-sorting script.

Kept as Python text so that they travel with the package without package-data rules. The
script uses no library.
"""

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1d2329; background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { font-size: 1.6rem; margin-top: 0; }
h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
code { font-family: ui-monospace, monospace; font-size: 0.88em; background: #f3f4f6;
       padding: 0 0.25em; border-radius: 3px; overflow-wrap: anywhere; }
hr { border: 0; border-top: 1px solid #e5e7eb; margin: 2rem 0; }
blockquote { border-left: 4px solid #d97706; margin: 1rem 0; padding: 0.25rem 1rem;
             background: #fffbeb; }
.table { overflow-x: auto; margin: 0.75rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.2rem 0.6rem; text-align: left; }
thead th { background: #f6f8fa; }
td { font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; }
figcaption { font-size: 0.85rem; color: #57606a; }
.missing { color: #9a3412; }
"""

SCRIPT = """
"use strict";
// Sort a table's body rows by one column: numbers by value, other text alphabetically;
// empty cells and dashes last. Clicking a heading sorts by it, clicking again reverses.
function cellValue(row, column) {
  const text = row.cells[column] ? row.cells[column].textContent.trim() : "";
  const number = parseFloat(text.replace(/[%*\\s]|pt$/g, ""));
  if (text === "" || text === "\\u2014") return { missing: true, number: NaN, text: text };
  return { missing: false, number: number, text: text };
}

function compareValues(a, b) {
  if (!isNaN(a.number) && !isNaN(b.number)) return a.number - b.number;
  return a.text.localeCompare(b.text, undefined, { numeric: true });
}

function sortTable(table, column, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort(function (x, y) {
    const a = cellValue(x, column), b = cellValue(y, column);
    if (a.missing || b.missing) return a.missing - b.missing;
    return descending ? compareValues(b, a) : compareValues(a, b);
  });
  rows.forEach(function (row) { body.appendChild(row); });
  Array.from(table.tHead.rows[0].cells).forEach(function (cell, index) {
    if (index === column) cell.setAttribute("aria-sort", descending ? "descending" : "ascending");
    else cell.removeAttribute("aria-sort");
  });
}

document.querySelectorAll("table.sortable").forEach(function (table) {
  Array.from(table.tHead.rows[0].cells).forEach(function (cell, column) {
    cell.title = "sort";
    cell.addEventListener("click", function () {
      sortTable(table, column, cell.getAttribute("aria-sort") === "ascending");
    });
  });
});
"""
