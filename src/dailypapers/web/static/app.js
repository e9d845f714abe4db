// Progressive enhancement: upvote and save without a page load. Without scripts the forms still post.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  const kind = form.dataset.toggle;
  if (!kind) return;
  const button = form.querySelector("button");
  if (button && button.dataset.login) {
    event.preventDefault();
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    return;
  }
  event.preventDefault();
  const token = document.querySelector('meta[name="csrf-token"]').content;
  try {
    const response = await fetch(form.action, {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token },
    });
    if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    if (!response.ok) { form.submit(); return; }
    const data = await response.json();
    if (kind === "upvote") {
      button.classList.toggle("on", data.voted);
      button.setAttribute("aria-pressed", String(data.voted));
      button.querySelector(".count").textContent = data.upvotes;
    } else {
      button.classList.toggle("on", data.saved);
      button.setAttribute("aria-pressed", String(data.saved));
      button.textContent = data.saved ? "Saved" : "Save";
    }
  } catch (error) {
    form.submit();
  }
});
