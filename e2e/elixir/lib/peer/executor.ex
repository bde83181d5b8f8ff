defmodule Peer.Executor do
  @moduledoc """
  Runs one claimed job the way `Oban.Queue.Executor` does, then acknowledges it:

  | worker result                    | row written                                             |
  |----------------------------------|---------------------------------------------------------|
  | `:ok`, `{:ok, _}`, anything else | `completed`, completed_at                               |
  | `{:error, reason}`, raise, throw | `retryable`, scheduled_at = now + backoff, error entry  |
  |   … with attempt >= max_attempts | `discarded`, discarded_at, error entry                  |

  (`{:cancel, _}`, `:discard` and `{:snooze, _}` exist in Oban; the workers here never return
  them, so they are not implemented.) The worker module is found from the row's `worker` string
  like `Oban.Worker.from_string/1`; an unknown worker fails the job like a raise.
  """

  alias Peer.{Engine, Out}

  @doc "Executes and acks `job` on `repo`. Returns the resulting state as a string."
  @spec run(GenServer.server(), Oban.Job.t()) :: String.t()
  def run(repo, %Oban.Job{} = job) do
    case perform(job) do
      {:ok, _result} ->
        Engine.complete_job(repo, job)
        "completed"

      {:error, kind, error, stacktrace} ->
        job = %{job | unsaved_error: %{kind: kind, reason: error, stacktrace: stacktrace}}

        {state, extra} =
          if job.attempt >= job.max_attempts do
            Engine.discard_job(repo, job)
            {"discarded", %{}}
          else
            seconds = backoff(job)
            Engine.error_job(repo, job, seconds)
            {"retryable", %{retry_in: seconds}}
          end

        Out.event(
          "job_failed",
          Map.merge(extra, %{
            job_id: job.id,
            queue: job.queue,
            worker: job.worker,
            attempt: job.attempt,
            state: state,
            error: Exception.format_banner(:error, error)
          })
        )

        state
    end
  end

  defp perform(job) do
    with {:ok, worker} <- from_string(job.worker) do
      case worker.perform(job) do
        {:error, _reason} = result ->
          {:error, :error, Oban.PerformError.exception({worker, result}), []}

        other ->
          {:ok, other}
      end
    end
  rescue
    error -> {:error, :error, error, __STACKTRACE__}
  catch
    kind, reason ->
      {:error, :error, Oban.CrashError.exception({kind, reason, __STACKTRACE__}), __STACKTRACE__}
  end

  # Oban.Worker.from_string/1: the dotted name must name an existing module with perform/1.
  defp from_string(name) do
    module = name |> String.split(".") |> Module.safe_concat()

    if Code.ensure_loaded?(module) and function_exported?(module, :perform, 1) do
      {:ok, module}
    else
      {:error, :error, RuntimeError.exception("module is not a worker: #{inspect(module)}"), []}
    end
  rescue
    ArgumentError -> {:error, :error, RuntimeError.exception("unknown worker: #{name}"), []}
  end

  @doc """
  Oban's default backoff (`Oban.Worker.backoff/1`): 15 + 2^attempt seconds, the attempt scaled
  to 20 when max_attempts is above 20, plus up to 10 % jitter (protocol §4.3).
  """
  @spec backoff(Oban.Job.t()) :: non_neg_integer()
  def backoff(%Oban.Job{attempt: attempt, max_attempts: max_attempts}) do
    clamped = if max_attempts <= 20, do: attempt, else: round(attempt / max_attempts * 20)
    base = 15 + Integer.pow(2, min(clamped, 100))
    base + trunc(:rand.uniform() * 0.1 * base)
  end
end
