// Fill the classroom field from ?classroom=ID (a link to a classroom page sent here to sign in).
"use strict";
const wanted = new URLSearchParams(window.location.search).get("classroom");
if (wanted) {
  document.getElementById("classroom").value = wanted;
  document.getElementById("token").focus();
}
