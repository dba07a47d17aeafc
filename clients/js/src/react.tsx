/**
 * React: `useCancelFlow`, the flow's state machine with no markup, and `CancelFlow`, a
 * default component built on it (themable with CSS variables, translated with the page's
 * catalogs). Import "@stayflow/client/styles.css" for the default look.
 */
import { useCallback, useEffect, useId, useMemo, useRef, useState } from "react";
import type { CSSProperties, FormEvent, ReactElement } from "react";

import { catalogs } from "./catalogs.js";
import {
  CancelFlowClient,
  StayflowError,
  type ActionResult,
  type ClientOptions,
  type FlowResult,
  type Offer,
  type PageModel,
  type Reason,
  type Step,
} from "./client.js";

export type Pending = "load" | "reason" | "accept" | "deflect" | "cancel" | null;

/** How the flow ended, as the modal's stayflow:complete says it. */
export interface Completion {
  outcome: string | null;
  offer_id: string | null;
  session_id: string;
  result: FlowResult | null;
  next_url: string | null;
  billing: ActionResult["billing"];
}

export interface CancelFlowState {
  /** "loading" until the first page model, then the page's step. */
  step: Step | "loading";
  page: PageModel | null;
  reasons: Reason[];
  offers: Offer[];
  pending: Pending;
  result: Completion | null;
  error: StayflowError | null;
  /** Words of the page's catalogs in the session's language. */
  t: (msgid: string) => string;
  chooseReason: (reasonId: string | null, comment?: string | null) => Promise<void>;
  accept: (offerId: string) => Promise<void>;
  deflect: () => Promise<void>;
  cancel: (options?: { reasonId?: string | null; comment?: string | null }) => Promise<void>;
  changeReason: () => Promise<void>;
  reload: () => Promise<void>;
}

export interface UseCancelFlowOptions extends ClientOptions {
  onComplete?: (completion: Completion) => void;
}

const REFUSED =
  "Sorry, this offer is no longer available. Please choose another option, or cancel if you prefer.";

export function translate(locale: string | undefined, msgid: string): string {
  const language = (locale ?? "en").toLowerCase();
  const words = catalogs[language] ?? catalogs[language.split("-")[0] ?? ""];
  return words?.[msgid] ?? msgid;
}

function asError(error: unknown): StayflowError {
  if (error instanceof StayflowError) return error;
  return new StayflowError(0, "client", error instanceof Error ? error.message : String(error));
}

/**
 * The cancel flow's state and actions. `source`: a client, or a cancel page URL (precancel's
 * `url`). Every action sets `pending` while it runs, then the new page model (or `error`);
 * the outcome lands in `result` (and `onComplete`).
 */
export function useCancelFlow(
  source: CancelFlowClient | string,
  options: UseCancelFlowOptions = {},
): CancelFlowState {
  const { fetch: fetcher, timeoutMs, onComplete } = options;
  const client = useMemo(
    () =>
      typeof source === "string"
        ? new CancelFlowClient(source, { fetch: fetcher, timeoutMs })
        : source,
    [source, fetcher, timeoutMs],
  );
  const [page, setPage] = useState<PageModel | null>(null);
  const [pending, setPending] = useState<Pending>("load");
  const [result, setResult] = useState<Completion | null>(null);
  const [error, setError] = useState<StayflowError | null>(null);
  const completed = useRef(onComplete);
  completed.current = onComplete;
  const busy = useRef(false);
  const lastOffer = useRef<string | null>(null);

  const run = useCallback(
    async (kind: Exclude<Pending, null>, work: () => Promise<PageModel | ActionResult>) => {
      if (busy.current) return; // one request at a time: no double submit
      busy.current = true;
      setPending(kind);
      setError(null);
      try {
        const answer = await work();
        if ("csrf_token" in answer) {
          setPage(answer);
          return;
        }
        setPage(answer.page);
        if (answer.billing === "refused") {
          setError(new StayflowError(409, "offer_refused", REFUSED));
          return;
        }
        if (answer.outcome) {
          const done: Completion = {
            outcome: answer.outcome,
            offer_id: kind === "accept" ? lastOffer.current : null,
            session_id: answer.page.session_id,
            result: answer.page.result ?? null,
            next_url: answer.redirect_url,
            billing: answer.billing ?? null,
          };
          setResult(done);
          completed.current?.(done);
        }
      } catch (caught) {
        setError(asError(caught));
      } finally {
        busy.current = false;
        setPending(null);
      }
    },
    [],
  );

  useEffect(() => {
    setPage(null);
    setResult(null);
    void run("load", () => client.load());
  }, [client, run]);

  const locale = page?.locale;
  const t = useCallback((msgid: string) => translate(locale, msgid), [locale]);

  return {
    step: page ? page.step : "loading",
    page,
    reasons: page?.reasons ?? [],
    offers: page?.offers ?? [],
    pending,
    result,
    error,
    t,
    chooseReason: (reasonId, comment) =>
      run("reason", () => client.chooseReason(reasonId, comment)),
    accept: (offerId) => {
      lastOffer.current = offerId;
      return run("accept", () => client.accept(offerId));
    },
    deflect: () => run("deflect", () => client.deflect()),
    cancel: (opts) => run("cancel", () => client.cancel(opts)),
    changeReason: () => run("load", () => client.load({ step: "reason" })),
    reload: () => run("load", () => client.load()),
  };
}

export interface CancelFlowProps extends UseCancelFlowOptions {
  source: CancelFlowClient | string;
  /** CSS variables (e.g. {"--stayflow-brand": "#0a7"}) over the page's branding. */
  theme?: Record<`--stayflow-${string}`, string>;
  className?: string;
}

/** The default cancel flow: the hosted page's steps, in your page, with your CSS variables. */
export function CancelFlow(props: CancelFlowProps): ReactElement {
  const { source, theme, className, ...options } = props;
  const flow = useCancelFlow(source, options);
  const { page, t, pending, error, step } = flow;
  const headingId = useId();
  const heading = useRef<HTMLHeadingElement>(null);
  const [reasonId, setReasonId] = useState<string | null>(null);
  const [comment, setComment] = useState("");
  const first = useRef(true);

  useEffect(() => {
    if (page) setReasonId(page.selected_reason_id);
  }, [page]);
  // A new step: move focus to its heading, so screen readers and keyboards follow (not on
  // the first render: the host page decides where focus starts).
  useEffect(() => {
    if (step === "loading") return;
    if (first.current) {
      first.current = false;
      return;
    }
    heading.current?.focus();
  }, [step]);

  const style = {
    ...(page
      ? {
          "--stayflow-brand": page.branding.primary_color,
          "--stayflow-page": page.branding.background_color,
        }
      : {}),
    ...theme,
  } as CSSProperties;
  const busy = pending !== null;
  const chosen = flow.reasons.find((r) => r.id === reasonId);
  const alert = error ? (
    <div className="sf-error" role="alert">
      {error.type === "offer_refused"
        ? t(REFUSED)
        : error.type === "reason_required"
          ? t("Please choose a reason before you cancel.")
          : error.status === 400
            ? t("Please choose one of the options shown.")
            : t("Something in the form was not right. Please try again.")}
    </div>
  ) : null;
  const keep = (
    <button type="button" className="sf-button sf-secondary" disabled={busy} onClick={() => void flow.deflect()}>
      {t("Never mind, keep my subscription")}
    </button>
  );

  let body: ReactElement;
  if (!page) {
    body = <div className="sf-loading" aria-busy="true" />;
  } else if (step === "finished" || step === "expired" || flow.result) {
    const result = flow.result?.result ?? page.result ?? null;
    body = (
      <div className="sf-result" role="status" data-outcome={page.outcome ?? ""}>
        <h2 id={headingId} ref={heading} tabIndex={-1}>
          {result?.heading ?? page.copy.title}
        </h2>
        {result ? <p className="sf-lead">{result.message}</p> : null}
      </div>
    );
  } else if (step === "reason") {
    const submit = (event: FormEvent) => {
      event.preventDefault();
      void flow.chooseReason(reasonId, chosen?.comment ? comment : null);
    };
    body = (
      <form onSubmit={submit} aria-busy={busy}>
        <h2 id={headingId} ref={heading} tabIndex={-1}>
          {page.copy.title}
        </h2>
        <p className="sf-lead">{page.copy.intro}</p>
        {alert}
        <fieldset className="sf-fieldset">
          <legend>
            {t("Why are you cancelling?")}
            {page.reason_required ? null : <span className="sf-hint"> {t("(optional)")}</span>}
          </legend>
          {flow.reasons.map((reason) => (
            <label key={reason.id} className="sf-choice">
              <input
                type="radio"
                name="reason_id"
                value={reason.id}
                checked={reasonId === reason.id}
                required={page.reason_required}
                onChange={() => setReasonId(reason.id)}
              />
              <span>{reason.label}</span>
            </label>
          ))}
        </fieldset>
        {chosen?.comment ? (
          <label className="sf-field">
            {t("Anything you would like to add?")} <span className="sf-hint">{t("(optional)")}</span>
            <textarea maxLength={2000} value={comment} onChange={(e) => setComment(e.target.value)} />
          </label>
        ) : null}
        <div className="sf-actions">
          <button type="submit" className="sf-button sf-primary" disabled={busy}>
            {t("Continue")}
          </button>
          <button
            type="button"
            className="sf-button sf-danger"
            disabled={busy}
            onClick={() => void flow.cancel({ reasonId, comment: chosen?.comment ? comment : null })}
          >
            {t("Cancel subscription")}
          </button>
          {keep}
        </div>
      </form>
    );
  } else if (step === "offers") {
    body = (
      <div aria-busy={busy}>
        <h2 id={headingId} ref={heading} tabIndex={-1}>
          {page.copy.offers_title}
        </h2>
        {alert}
        {flow.offers.map((offer) => (
          <section key={offer.id} className="sf-offer" aria-label={offer.headline}>
            <h3>{offer.headline}</h3>
            {offer.body ? <p>{offer.body}</p> : null}
            <button
              type="button"
              className="sf-button sf-primary"
              disabled={busy}
              onClick={() => void flow.accept(offer.id)}
            >
              {offer.button}
            </button>
          </section>
        ))}
        <div className="sf-actions">
          <button type="button" className="sf-button sf-danger" disabled={busy} onClick={() => void flow.cancel()}>
            {t("No thanks, cancel my subscription")}
          </button>
          {keep}
        </div>
        {flow.reasons.length ? (
          <button type="button" className="sf-link" disabled={busy} onClick={() => void flow.changeReason()}>
            {t("Change my answer")}
          </button>
        ) : null}
      </div>
    );
  } else {
    body = (
      <div aria-busy={busy}>
        <h2 id={headingId} ref={heading} tabIndex={-1}>
          {page.copy.confirm_title}
        </h2>
        <p className="sf-lead">{page.copy.confirm_body}</p>
        {alert}
        <div className="sf-actions">
          <button type="button" className="sf-button sf-danger" disabled={busy} onClick={() => void flow.cancel()}>
            {t("Cancel subscription")}
          </button>
          {keep}
        </div>
        {flow.reasons.length ? (
          <button type="button" className="sf-link" disabled={busy} onClick={() => void flow.changeReason()}>
            {t("Change my answer")}
          </button>
        ) : null}
      </div>
    );
  }
  return (
    <div
      className={["sf-flow", className].filter(Boolean).join(" ")}
      style={style}
      lang={page?.locale}
      aria-labelledby={page ? headingId : undefined}
      role="region"
      data-step={step}
    >
      {page && step !== "finished" && step !== "expired" && !flow.result ? (
        <ol className="sf-steps" aria-label={t("Progress")}>
          <li className="sf-done" aria-current={step === "reason" ? "step" : undefined}>
            <span className="sf-sr-only">{t("Your reason")}</span>
          </li>
          <li className={step !== "reason" ? "sf-done" : undefined} aria-current={step !== "reason" ? "step" : undefined}>
            <span className="sf-sr-only">{t("Your options")}</span>
          </li>
        </ol>
      ) : null}
      {!page && error ? (
        <div className="sf-error" role="alert">
          {t("Something in the form was not right. Please try again.")}
        </div>
      ) : (
        body
      )}
    </div>
  );
}

export { CancelFlowClient, StayflowError } from "./client.js";
