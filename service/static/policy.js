// The policy page's rankings: drag an entry to reorder it (HTML5 drag and drop), or use its
// up/down buttons. Without this script the buttons post the form and the server moves it.
"use strict";
(function () {
  function refresh(list) {
    const items = Array.from(list.children);
    items.forEach(function (li, i) {
      const up = li.querySelector("button.up");
      const down = li.querySelector("button.down");
      up.value = list.dataset.name + ":" + i + ":up";
      down.value = list.dataset.name + ":" + i + ":down";
      up.disabled = i === 0;
      down.disabled = i === items.length - 1;
    });
  }

  document.querySelectorAll("ol.rank").forEach(function (list) {
    let dragged = null;
    list.addEventListener("click", function (event) {
      const button = event.target.closest("button[name=move]");
      if (!button) return;
      event.preventDefault();
      const li = button.closest("li");
      if (button.classList.contains("up") && li.previousElementSibling) {
        list.insertBefore(li, li.previousElementSibling);
      } else if (button.classList.contains("down") && li.nextElementSibling) {
        list.insertBefore(li.nextElementSibling, li);
      }
      refresh(list);
      const again = li.querySelector("button." + (button.classList.contains("up") ? "up" : "down"));
      (again.disabled ? li.querySelector("button:not([disabled])") : again).focus();
    });
    list.addEventListener("dragstart", function (event) {
      dragged = event.target.closest("li");
      if (!dragged) return;
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.querySelector("input").value);
    });
    list.addEventListener("dragover", function (event) {
      if (!dragged) return;
      event.preventDefault();
      const over = event.target.closest("li");
      if (!over || over === dragged) return;
      const box = over.getBoundingClientRect();
      const after = event.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, after ? over.nextElementSibling : over);
    });
    list.addEventListener("drop", function (event) {
      if (dragged) event.preventDefault();
    });
    list.addEventListener("dragend", function () {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
      refresh(list);
    });
  });
})();
