// The six status words of the HTTP API (docs/http-api.md), in the order of a job's life.
export const STATES = ["pending", "processing", "retry", "completed", "failed", "cancelled"];

/** What each status means, for tooltips and empty states. */
export const MEANING = {
  pending: "waiting for a worker (due now or scheduled)",
  processing: "running on a worker",
  retry: "failed an attempt, will run again when due",
  completed: "ran successfully",
  failed: "attempts spent, or raised conveyor.Permanent",
  cancelled: "cancelled before it finished",
};

/** Which actions the API accepts in each status. */
export const ACTIONS = {
  retry: (s) => s === "failed" || s === "cancelled",
  cancel: (s) => s === "pending" || s === "retry" || s === "processing",
  remove: (s) => s !== "processing",
};

/** "#/jobs?status=failed&queue=mail" from a filter object (empty values left out). */
export function jobsHref(filters) {
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v != null && v !== "" && v !== 0));
  const text = query.toString();
  return "#/jobs" + (text ? "?" + text : "");
}
