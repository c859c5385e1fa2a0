extension StatusPageScript {
    /// The status page's script, second part: operator actions. Each one is a request to an
    /// endpoint of the admin API (docs/operations.md), shown in a confirmation dialog with its
    /// method, path and body before it is sent; the answer is shown, then the page refreshes.
    static let actions = #"""
    const path = (...parts) => "/" + parts.map(encodeURIComponent).join("/");

    function button(label, action, attrs, spec) {
      return el("button", { type: "button", "data-action": action, ...attrs, onclick: () => act(spec), text: label });
    }

    function upstreamActions(pipeline, u, breaker, circuit) {
      const at = { "data-pipeline": pipeline, "data-upstream": u.name };
      const upstream = path("pipelines", pipeline, "upstreams", u.name);
      const actions = [];
      if (u.draining) {
        actions.push(restore(pipeline, { name: u.name, address: u.address, weight: u.weight }, true));
      } else {
        actions.push(button("drain", "drain", at, {
          title: `Drain ${u.name}`,
          detail: `${u.name} (${u.address}) takes no new connection; open ones finish, then it leaves the set.`,
          request: () => ({ method: "DELETE", path: upstream }),
          done: () => page.drained.set(pipeline + "/" + u.name, { name: u.name, address: u.address, weight: u.weight }),
        }));
      }
      actions.push(button("weight", "weight", at, {
        title: `Weight of ${u.name}`, detail: "Its share of new connections among the upstreams.",
        fields: [{ name: "weight", label: "weight", value: u.weight, min: 0, max: 1000000, step: 1 }],
        request: (v) => ({ method: "PATCH", path: upstream, body: { weight: v.weight } }),
      }));
      if (breaker && circuit && circuit.state !== "closed") {
        actions.push(button("reset breaker", "reset-breaker", at, {
          title: `Reset the circuit of ${u.name}`, detail: `Stage ${breaker} closes its circuit for ${u.name} now.`,
          request: () => ({ method: "POST", path: path("pipelines", pipeline, "stages", breaker, "control"),
                            body: { op: "reset", upstream: u.name } }),
        }));
      }
      return actions;
    }

    function removedActions(pipeline, saved) {
      return restore(pipeline, saved, false);
    }

    // Restoring races the host: a draining upstream leaves the set once its last connection
    // has closed, which may fall between the page's last refresh and the click. The request
    // the page's view calls for goes first (present: PATCH draining false; gone: POST it back);
    // an answer saying the view was old (404: it left; 409: it is still there) sends the other.
    function restore(pipeline, saved, present) {
      const patch = () => ({ method: "PATCH", path: path("pipelines", pipeline, "upstreams", saved.name), body: { draining: false } });
      const post = () => ({ method: "POST", path: path("pipelines", pipeline, "upstreams"), body: saved });
      return button("restore", "restore", { "data-pipeline": pipeline, "data-upstream": saved.name }, {
        title: `Restore ${saved.name}`,
        detail: present ? `${saved.name} takes new connections again.` : `Adds ${saved.name} (${saved.address}) back with weight ${saved.weight}.`,
        request: present ? patch : post,
        otherwise: present ? { status: 404, request: post } : { status: 409, request: patch },
        done: () => page.drained.delete(pipeline + "/" + saved.name),
      });
    }

    function stageActions(pipeline, stage, type) {
      if (type !== "ratelimit") return null;
      return button("set rate", "set-rate", { "data-pipeline": pipeline, "data-stage": stage }, {
        title: `Rate of ${stage}`, detail: "The default rate and burst for every key without an override.",
        fields: [{ name: "rate", label: "connections per second", value: "", min: 0.000001, step: "any" },
                 { name: "burst", label: "burst", value: "", min: 1, step: "any" }],
        request: (v) => ({ method: "POST", path: path("pipelines", pipeline, "stages", stage, "control"),
                           body: { op: "set_rate", rate: v.rate, burst: v.burst } }),
      });
    }

    // MARK: the confirmation dialog

    let pending = null;

    function readFields() {
      const values = {};
      for (const input of $("confirm-fields").querySelectorAll("input")) {
        if (!input.checkValidity() || input.value === "") return { error: `${input.dataset.label}: ${input.validationMessage || "required"}` };
        values[input.name] = Number(input.value);
      }
      return { values };
    }

    function showRequest() {
      const { values } = readFields();
      const request = pending.request(values || {});
      $("confirm-request").textContent = request.method + " " + request.path +
        (request.body === undefined ? "" : " " + JSON.stringify(request.body));
    }

    function act(spec) {
      pending = spec;
      $("confirm-title").textContent = spec.title;
      $("confirm-detail").textContent = spec.detail;
      $("confirm-error").hidden = true;
      $("confirm-fields").replaceChildren(...(spec.fields || []).map((f) =>
        el("label", {}, f.label, el("input", { type: "number", name: f.name, value: f.value, min: f.min, max: f.max,
                                               step: f.step, required: true, "data-label": f.label, oninput: showRequest }))));
      showRequest();
      $("confirm").showModal();
    }

    $("confirm-cancel").addEventListener("click", () => { pending = null; $("confirm").close(); });
    // A dialog's close event is queued, so it may arrive after the next action has opened the
    // dialog again (cancel, then a quick click elsewhere): that action stays pending.
    $("confirm").addEventListener("close", () => { if (!$("confirm").open) pending = null; });

    $("confirm-ok").addEventListener("click", async () => {
      const spec = pending;
      if (!spec) return;
      const { values, error } = readFields();
      if (error) { $("confirm-error").textContent = error; $("confirm-error").hidden = false; return; }
      $("confirm").close();
      const request = spec.request(values);
      try {
        let response = await api(request.method, request.path, request.body);
        if (spec.otherwise && response.status === spec.otherwise.status) {
          const second = spec.otherwise.request();
          response = await api(second.method, second.path, second.body);
        }
        const text = await response.text();
        let answer = {};
        try { answer = JSON.parse(text); } catch { answer = { error: text }; }
        if (response.status === 401) return showLogin("The token was refused.");
        if (!response.ok) {
          toast(`${spec.title}: refused (${response.status}) ${answer.error || ""}`, true);
        } else {
          if (spec.done) spec.done();
          toast(`${spec.title}: done`, false);
        }
      } catch (failure) {
        toast(`${spec.title}: the host did not answer`, true);
      }
      refreshNow();
    });

    let toastTimer = null;
    function toast(message, failed) {
      $("toast").textContent = message;
      $("toast").className = failed ? "error" : "";
      $("toast").hidden = false;
      clearTimeout(toastTimer);
      toastTimer = setTimeout(() => { $("toast").hidden = true; }, 5000);
    }

    if (page.token) $("logout").hidden = false;
    refresh();

    """#
}
