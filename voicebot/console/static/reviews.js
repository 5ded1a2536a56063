// Review queue page for dialog designers: lists corrections reps submitted, newest first.
"use strict";

async function loadReviews() {
  const response = await fetch("/console/reviews?format=json", { credentials: "same-origin" });
  const data = await response.json();
  if (!response.ok) {
    document.getElementById("reviews-error").textContent = data.error || response.statusText;
    return;
  }
  const body = document.querySelector("#reviews-table tbody");
  for (const review of data.reviews) {
    const row = document.createElement("tr");
    const values = [
      new Date(review.created_at * 1000).toLocaleString(),
      review.call_id,
      review.rep_id,
      review.bot_text,
      review.corrected_text,
    ];
    for (const value of values) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    body.append(row);
  }
}

document.addEventListener("DOMContentLoaded", loadReviews);
