/**
 * A small in-memory stayflow for unit tests: the cancel page's JSON API as a fetch function,
 * with its rules (the CSRF token on every action, a reason before cancelling when required,
 * an outcome only once). The real server is exercised end to end by tests/clients (pytest).
 */
import type { ActionResult, PageModel } from "../src/client";

export interface FakeOptions {
  reasonRequired?: boolean;
  locale?: string;
  refuseOffer?: string;
}

export interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

export function fakeStayflow(options: FakeOptions = {}) {
  const origin = "https://stayflow.test";
  const token = "tok_123";
  const calls: Call[] = [];
  const state = {
    step: "reason" as PageModel["step"],
    reason: null as string | null,
    outcome: null as string | null,
    hidden: new Set<string>(),
  };
  const offers = [
    { id: "twenty_off", type: "discount", headline: "Stay for 20% off", body: "", button: "Take 20% off", details: {} },
    { id: "pause_2m", type: "pause", headline: "Pause for 2 months", body: "", button: "Pause", details: {} },
  ];
  function page(): PageModel {
    return {
      session_id: "cs_1",
      step: state.step,
      outcome: state.outcome,
      locale: options.locale ?? "en",
      reason_required: options.reasonRequired ?? false,
      copy: { title: "We're sorry to see you go", intro: "Tell us why", offers_title: "Before you go", confirm_title: "Confirm", confirm_body: "Sure?" },
      reasons: [
        { id: "too_expensive", label: "It's too expensive", comment: false },
        { id: "not_using", label: "I'm not using it enough", comment: true },
      ],
      selected_reason_id: state.reason,
      comment: null,
      offers: state.step === "offers" ? offers.filter((o) => !state.hidden.has(o.id)) : [],
      csrf_token: "csrf_ok",
      actions: {
        reason: `/c/${token}/reason`,
        accept: `/c/${token}/accept`,
        deflect: `/c/${token}/deflect`,
        cancel: `/c/${token}/cancel`,
      },
      branding: { company_name: "Acme", logo: null, primary_color: "#3B5BDB", background_color: "#F5F6FA" },
      return_url: "https://app.test/account",
      redirect_url: null,
      result: state.outcome ? { state: "done", heading: "Done", message: `Outcome: ${state.outcome}` } : null,
    };
  }
  function json(status: number, body: unknown): Response {
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  }
  function error(status: number, type: string, message: string): Response {
    return json(status, { error: { type, message } });
  }
  function finish(outcome: string, redirect: string | null, billing: ActionResult["billing"] = "done"): Response {
    state.outcome = outcome;
    state.step = "finished";
    const out: ActionResult = { outcome, redirect_url: redirect, replayed: false, billing, page: page() };
    return json(200, out);
  }
  const fetcher = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input));
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries((init.headers ?? {}) as Record<string, string>)) {
      headers[name.toLowerCase()] = value;
    }
    const body = init.body ? JSON.parse(String(init.body)) : null;
    calls.push({ method: init.method ?? "GET", url: url.toString(), headers, body });
    if (url.origin !== origin) throw new TypeError("Failed to fetch");
    if (url.pathname === "/precancel") {
      if (!body?.auth_hash) return json(400, { valid: false, message: "auth_hash is required", error: { type: "invalid_signature", message: "auth_hash is required" } });
      return json(200, { valid: true, url: `${origin}/c/${token}`, message: `${origin}/c/${token}`, session_id: "cs_1" });
    }
    if (!url.pathname.startsWith(`/c/${token}`)) return error(404, "not_found", "no such cancel session");
    if ((init.method ?? "GET") === "GET") {
      if (url.searchParams.get("step") === "reason" && !state.outcome) state.step = "reason";
      return json(200, page());
    }
    if (body?.csrf_token !== "csrf_ok") return error(403, "csrf_failed", "missing or wrong csrf_token");
    if (state.outcome) return error(409, "session_finished", "this session is finished");
    const action = url.pathname.split("/").pop();
    if (action === "reason") {
      state.reason = body.reason_id ?? null;
      state.step = "offers";
      return json(200, { outcome: null, redirect_url: null, replayed: false, billing: null, page: page() });
    }
    if (action === "accept") {
      if (!offers.some((o) => o.id === body.offer_id) || state.hidden.has(body.offer_id)) {
        return error(400, "invalid_request", "that offer is not available in this session");
      }
      if (body.offer_id === options.refuseOffer) {
        state.hidden.add(body.offer_id);
        return json(200, { outcome: null, redirect_url: null, replayed: false, billing: "refused", page: page() });
      }
      return finish("saved", "https://app.test/account");
    }
    if (action === "deflect") return finish("deflected", "https://app.test/account", null);
    if (action === "cancel") {
      if (options.reasonRequired && !body.reason_id && !state.reason) {
        return error(422, "reason_required", "choose a reason first");
      }
      return finish("canceled", "https://app.test/goodbye");
    }
    return error(404, "not_found", "no such action");
  };
  return { origin, pageUrl: `${origin}/c/${token}`, calls, state, fetch: fetcher as typeof fetch };
}
