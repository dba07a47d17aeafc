export {
  CancelFlowClient,
  StayflowError,
  precancel,
  type Action,
  type ActionResult,
  type ClientOptions,
  type FlowResult,
  type Offer,
  type PageModel,
  type PrecancelData,
  type PrecancelError,
  type PrecancelOk,
  type Reason,
  type Step,
} from "./client.js";
export { catalogs } from "./catalogs.js";
