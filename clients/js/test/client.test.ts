import { describe, expect, it } from "vitest";

import { CancelFlowClient, StayflowError, precancel } from "../src/index";
import { fakeStayflow } from "./fake-stayflow";

describe("precancel", () => {
  it("posts the data as text/plain (no preflight) and answers the page URL", async () => {
    const fake = fakeStayflow();
    const answer = await precancel(`${fake.origin}/`, { app_id: "app_1", subscription_id: "sub_1", auth_hash: "x" }, { fetch: fake.fetch });
    expect(answer.url).toBe(fake.pageUrl);
    const [call] = fake.calls;
    expect(call?.url).toBe(`${fake.origin}/precancel?app_id=app_1`);
    expect(call?.headers["content-type"]).toBe("text/plain;charset=UTF-8");
  });

  it("rejects a refusal with stayflow's message", async () => {
    const fake = fakeStayflow();
    const refused = precancel(fake.origin, { app_id: "a", subscription_id: "s" }, { fetch: fake.fetch });
    await expect(refused).rejects.toMatchObject({ status: 400, type: "invalid_signature", message: "auth_hash is required" });
  });

  it("rejects as a network error when stayflow cannot be reached", async () => {
    const fake = fakeStayflow();
    const down = precancel("https://down.test", { app_id: "a", subscription_id: "s" }, { fetch: fake.fetch });
    await expect(down).rejects.toMatchObject({ status: 0, type: "network" });
  });
});

describe("CancelFlowClient", () => {
  it("refuses an answer that is not a valid precancel answer", () => {
    expect(() => CancelFlowClient.fromPrecancel({ valid: false, message: "nope" })).toThrow("nope");
    expect(() => new CancelFlowClient("https://stayflow.test/elsewhere")).toThrow(StayflowError);
  });

  it("runs a session: load, reason, accept, with the CSRF token on every action", async () => {
    const fake = fakeStayflow();
    const client = CancelFlowClient.fromPrecancel(
      { valid: true, url: fake.pageUrl, message: "", session_id: "cs_1" },
      { fetch: fake.fetch },
    );
    const page = await client.load();
    expect(page.step).toBe("reason");
    expect(page.reasons.map((r) => r.id)).toEqual(["too_expensive", "not_using"]);
    const chosen = await client.chooseReason("too_expensive");
    expect(chosen.page.step).toBe("offers");
    expect(chosen.page.offers).toHaveLength(2);
    const saved = await client.accept("twenty_off");
    expect(saved.outcome).toBe("saved");
    expect(saved.redirect_url).toBe("https://app.test/account");
    const posts = fake.calls.filter((c) => c.method === "POST");
    expect(posts.map((c) => (c.body as { csrf_token: string }).csrf_token)).toEqual(["csrf_ok", "csrf_ok"]);
    expect(posts.every((c) => c.headers["accept"] === "application/json")).toBe(true);
  });

  it("loads the page first when an action comes before load()", async () => {
    const fake = fakeStayflow();
    const client = new CancelFlowClient(fake.pageUrl, { fetch: fake.fetch });
    const out = await client.deflect();
    expect(out.outcome).toBe("deflected");
    expect(fake.calls.map((c) => c.method)).toEqual(["GET", "POST"]);
  });

  it("turns stayflow's error body into a StayflowError", async () => {
    const fake = fakeStayflow({ reasonRequired: true });
    const client = new CancelFlowClient(fake.pageUrl, { fetch: fake.fetch });
    await client.load();
    await expect(client.cancel()).rejects.toMatchObject({ status: 422, type: "reason_required" });
    await expect(client.accept("nope")).rejects.toMatchObject({ status: 400, type: "invalid_request" });
    const done = await client.cancel({ reasonId: "not_using", comment: "busy" });
    expect(done.outcome).toBe("canceled");
    expect(fake.calls.at(-1)?.body).toEqual({ reason_id: "not_using", comment: "busy", csrf_token: "csrf_ok" });
    await expect(client.deflect()).rejects.toMatchObject({ status: 409, type: "session_finished" });
  });

  it("asks for the reason step again", async () => {
    const fake = fakeStayflow();
    const client = new CancelFlowClient(fake.pageUrl, { fetch: fake.fetch });
    await client.chooseReason("too_expensive");
    const again = await client.load({ step: "reason" });
    expect(again.step).toBe("reason");
    expect(fake.calls.at(-1)?.url).toBe(`${fake.pageUrl}?step=reason`);
  });
});
