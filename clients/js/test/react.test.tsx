import { act, cleanup, fireEvent, render, renderHook, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { CancelFlow, translate, useCancelFlow } from "../src/react";
import { fakeStayflow } from "./fake-stayflow";

afterEach(cleanup);

describe("useCancelFlow", () => {
  it("exposes the state machine: step, reasons, offers, pending, result", async () => {
    const fake = fakeStayflow();
    const onComplete = vi.fn();
    const { result } = renderHook(() => useCancelFlow(fake.pageUrl, { fetch: fake.fetch, onComplete }));
    expect(result.current.step).toBe("loading");
    expect(result.current.pending).toBe("load");
    await waitFor(() => expect(result.current.step).toBe("reason"));
    expect(result.current.pending).toBeNull();
    expect(result.current.reasons).toHaveLength(2);
    let choosing: Promise<void> = Promise.resolve();
    act(() => {
      choosing = result.current.chooseReason("too_expensive");
    });
    expect(result.current.pending).toBe("reason");
    await act(() => choosing);
    expect(result.current.step).toBe("offers");
    expect(result.current.offers.map((o) => o.id)).toEqual(["twenty_off", "pause_2m"]);
    await act(() => result.current.accept("pause_2m"));
    expect(result.current.step).toBe("finished");
    expect(result.current.result).toMatchObject({ outcome: "saved", offer_id: "pause_2m", session_id: "cs_1", next_url: "https://app.test/account" });
    expect(onComplete).toHaveBeenCalledTimes(1);
    expect(onComplete.mock.calls[0]?.[0].outcome).toBe("saved");
  });

  it("reports errors and stays on the step", async () => {
    const fake = fakeStayflow({ reasonRequired: true });
    const { result } = renderHook(() => useCancelFlow(fake.pageUrl, { fetch: fake.fetch }));
    await waitFor(() => expect(result.current.step).toBe("reason"));
    await act(() => result.current.cancel());
    expect(result.current.error).toMatchObject({ status: 422, type: "reason_required" });
    expect(result.current.step).toBe("reason");
    expect(result.current.result).toBeNull();
  });

  it("an offer Stripe refused: back on the offers, without it", async () => {
    const fake = fakeStayflow({ refuseOffer: "twenty_off" });
    const { result } = renderHook(() => useCancelFlow(fake.pageUrl, { fetch: fake.fetch }));
    await waitFor(() => expect(result.current.step).toBe("reason"));
    await act(() => result.current.chooseReason("too_expensive"));
    await act(() => result.current.accept("twenty_off"));
    expect(result.current.error?.type).toBe("offer_refused");
    expect(result.current.step).toBe("offers");
    expect(result.current.offers.map((o) => o.id)).toEqual(["pause_2m"]);
    expect(result.current.result).toBeNull();
  });

  it("sends one request at a time (no double submit)", async () => {
    const fake = fakeStayflow();
    const { result } = renderHook(() => useCancelFlow(fake.pageUrl, { fetch: fake.fetch }));
    await waitFor(() => expect(result.current.step).toBe("reason"));
    await act(async () => {
      await Promise.all([result.current.deflect(), result.current.deflect()]);
    });
    expect(fake.calls.filter((c) => c.method === "POST")).toHaveLength(1);
    expect(result.current.result?.outcome).toBe("deflected");
  });
});

describe("CancelFlow", () => {
  it("renders the steps accessibly and completes a cancel", async () => {
    const fake = fakeStayflow();
    const onComplete = vi.fn();
    render(<CancelFlow source={fake.pageUrl} fetch={fake.fetch} onComplete={onComplete} theme={{ "--stayflow-brand": "#0a7" }} />);
    const region = await screen.findByRole("region", { name: "We're sorry to see you go" });
    expect(region.style.getPropertyValue("--stayflow-brand")).toBe("#0a7");
    expect(screen.getByRole("group", { name: /Why are you cancelling\?/ })).toBeTruthy();
    fireEvent.click(screen.getByLabelText("I'm not using it enough"));
    // A reason that asks for a comment shows the comment field.
    fireEvent.change(screen.getByLabelText(/Anything you would like to add\?/), { target: { value: "busy" } });
    fireEvent.click(screen.getByRole("button", { name: "Continue" }));
    await screen.findByRole("heading", { name: "Before you go" });
    // Focus follows the step (keyboard and screen-reader users).
    expect(document.activeElement?.textContent).toBe("Before you go");
    fireEvent.click(screen.getByRole("button", { name: "No thanks, cancel my subscription" }));
    const status = await screen.findByRole("status");
    expect(status.textContent).toContain("Outcome: canceled");
    expect(onComplete).toHaveBeenCalledWith(expect.objectContaining({ outcome: "canceled", next_url: "https://app.test/goodbye" }));
    expect(fake.calls.find((c) => c.url.endsWith("/reason"))?.body).toMatchObject({ reason_id: "not_using", comment: "busy" });
  });

  it("speaks the session's language with the page's catalogs", async () => {
    const fake = fakeStayflow({ locale: "de" });
    render(<CancelFlow source={fake.pageUrl} fetch={fake.fetch} />);
    await screen.findByRole("button", { name: translate("de", "Continue") });
    expect(translate("de", "Continue")).not.toBe("Continue");
    expect(screen.getByRole("button", { name: "Abo kündigen" })).toBeTruthy();
    expect(translate("fr-CA", "Cancel subscription")).toBe(translate("fr", "Cancel subscription"));
    expect(translate("xx", "Continue")).toBe("Continue");
  });

  it("says so when stayflow cannot be reached", async () => {
    const fake = fakeStayflow();
    render(<CancelFlow source="https://down.test/c/x" fetch={fake.fetch} />);
    expect(await screen.findByRole("alert")).toBeTruthy();
  });
});
