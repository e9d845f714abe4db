// Follow / unfollow, "not interested" / undo and "add to collection" without a page load; without
// scripts the forms still post.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  const kind = form.dataset.signal;
  if (!kind) return;
  event.preventDefault();
  const button = form.querySelector("button");
  const token = document.querySelector('meta[name="csrf-token"]').content;
  try {
    const response = await fetch(form.action, {
      method: "POST", credentials: "same-origin", body: new FormData(form),
      headers: { "Accept": "application/json", "X-CSRF-Token": token },
    });
    if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    if (!response.ok) { form.submit(); return; }
    const data = await response.json();
    if (kind === "follow") {
      form.action = data.following ? "/unfollow" : "/follow";
      button.classList.toggle("on", data.following);
      button.setAttribute("aria-pressed", String(data.following));
      button.setAttribute("aria-label", (data.following ? "Unfollow " : "Follow ") + button.dataset.label);
      button.textContent = data.following ? "Following" : "Follow";
      if (data.following) document.querySelectorAll("[data-after-follow]").forEach((e) => { e.hidden = false; });
    } else if (kind === "collect") {
      const name = form.querySelector("select").selectedOptions[0].text;
      let status = form.querySelector("[role=status]");
      if (!status) {
        status = document.createElement("span");
        status.className = "collected";
        status.setAttribute("role", "status");
        form.append(" ", status);
      }
      status.textContent = (data.added ? "Added to " : "Already in ") + name;
    } else {
      form.action = form.action.replace(/\/(un)?dismiss$/, data.dismissed ? "/undismiss" : "/dismiss");
      form.closest(".card")?.classList.toggle("dismissed", data.dismissed);
      button.setAttribute("aria-pressed", String(data.dismissed));
      button.textContent = data.dismissed ? "Undo “not interested”" : "Not interested";
    }
  } catch (error) {
    form.submit();
  }
});
