// The mailbox's one script: each <time data-local> shows its ISO instant in the viewer's
// own time zone and locale (the page's text is the UTC time until this runs), with the
// zone named once at the top. Served from /mailbox/local-times.js: the pages' policy
// allows scripts from this server only, and none inline.
"use strict";

const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

for (const node of document.querySelectorAll("time[data-local]")) {
  const instant = new Date(node.getAttribute("datetime"));
  if (Number.isNaN(instant.getTime())) continue;
  node.title = node.textContent; // the UTC original, on hover
  node.textContent = format.format(instant);
}

const note = document.getElementById("time-zone");
if (note) note.textContent = `Times are in your time zone, ${zone}.`;
