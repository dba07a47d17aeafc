/**
 * An example business page: its own "Cancel" button starts a stayflow session with
 * precancel() and shows the flow with the default CancelFlow component, in place.
 *
 * config.json (beside index.html) says where stayflow is and what to send to precancel;
 * auth_hash is made on the business's server (here: whoever writes config.json).
 */
import { StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";

import { CancelFlowClient, precancel, type PrecancelData } from "../src/index";
import { CancelFlow, type Completion } from "../src/react";
import "../src/styles.css";

interface Config {
  stayflow_url: string;
  precancel: PrecancelData;
}

function App() {
  const [client, setClient] = useState<CancelFlowClient | null>(null);
  const [done, setDone] = useState<Completion | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  async function start() {
    setProblem(null);
    try {
      const config = (await (await fetch("./config.json", { cache: "no-store" })).json()) as Config;
      const answer = await precancel(config.stayflow_url, config.precancel);
      setClient(CancelFlowClient.fromPrecancel(answer));
    } catch (error) {
      // stayflow down or refusing: the business's own way to cancel.
      setProblem(error instanceof Error ? error.message : String(error));
    }
  }

  return (
    <main style={{ maxWidth: 640, margin: "0 auto", padding: 16, fontFamily: "system-ui, sans-serif" }}>
      <h1>Acme Pro</h1>
      <p>Your plan renews on 1 December.</p>
      {done ? (
        <p id="outcome" data-outcome={done.outcome ?? ""}>
          Outcome: {done.outcome}
          {done.offer_id ? ` (${done.offer_id})` : ""}
        </p>
      ) : null}
      {problem ? (
        <p id="problem" role="alert">
          Could not start: {problem}. <a href="mailto:support@example.com">Write to us</a> to cancel.
        </p>
      ) : null}
      {client ? (
        <CancelFlow source={client} onComplete={setDone} theme={{ "--stayflow-brand": "#0b7a5a" }} />
      ) : (
        <button id="cancel" type="button" onClick={() => void start()}>
          Cancel subscription
        </button>
      )}
    </main>
  );
}

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
