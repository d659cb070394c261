//! The page's inline style and script, kept apart from the markup.

/// The page's inline style sheet.
pub(super) const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #212529; background: #f6f7f9; }
main { max-width: 1000px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: 8px 0 4px; }
h2 { font-size: 1.15rem; margin: 0 0 8px; }
section { background: #fff; border: 1px solid #dee2e6; border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
.meta { color: #6c757d; font-size: 0.9rem; margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { flex: 1 1 140px; border: 1px solid #dee2e6; border-radius: 6px; padding: 8px 10px; }
.card .label { color: #6c757d; font-size: 0.8rem; }
.card .value { font-size: 1.25rem; font-weight: 600; }
.card .detail { color: #6c757d; font-size: 0.8rem; }
svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; }
td[data-value] { font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=descending]::after { content: ' \\25BE'; }
table.sortable th[aria-sort=ascending]::after { content: ' \\25B4'; }
tfoot td { color: #6c757d; font-style: italic; }
.legend { list-style: none; padding: 0; margin: 6px 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 0.9rem; }
.swatch { display: inline-block; width: 14px; height: 4px; margin-right: 6px; vertical-align: middle; }
.note { color: #6c757d; }
details { margin-top: 8px; }
summary { cursor: pointer; color: #1f77b4; }
.worse { color: #d62728; font-weight: 600; }
";

/// Sorts a table by the clicked column's `data-value`, numbers as numbers.
pub(super) const SCRIPT: &str = "
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table');
    var body = table.tBodies[0];
    var col = th.cellIndex;
    var down = th.getAttribute('aria-sort') !== 'descending';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-value');
      var y = b.cells[col].getAttribute('data-value');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return down ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
";
