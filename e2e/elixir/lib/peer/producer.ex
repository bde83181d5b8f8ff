defmodule Peer.Producer do
  @moduledoc """
  One queue running on this node, like Oban's producer with the Basic engine (protocol §3.3):

  - fetches `limit - running` jobs whenever an insert notification names its queue, a job
    finishes, or the poll timer fires (every second; Oban's own refresh is 60 s, but it also
    counts on the leader's every-second announcements, which a Rust-only cluster may not send);
    triggers within 5 ms coalesce into one fetch (Oban's `dispatch_cooldown`);
  - runs each job in its own process (`Task`), which performs and acks it (`Peer.Executor`);
  - on stop, fetches nothing more and waits up to the grace period (Oban's
    `shutdown_grace_period`, 15 s) for running jobs; any still running are left `executing`.
  """

  alias Peer.{Engine, Executor}

  @poll_ms 1_000
  @cooldown_ms 5
  @grace_ms 15_000

  @doc """
  Starts the producer, linked to the caller. Options: `:repo`, `:queue`, `:limit`, `:node`,
  `:uuid` (the producer's id, the second element of `attempted_by`).
  """
  @spec start_link(keyword()) :: pid()
  def start_link(opts) do
    spawn_link(fn ->
      state =
        Map.new(opts) |> Map.merge(%{running: %{}, counts: %{}, stopping: nil, pending: false})

      send(self(), :poll)
      loop(state)
    end)
  end

  @doc """
  Stops producers together (so their grace periods overlap) and returns, for each, a summary
  `%{counts: %{"completed" => n, "retryable" => n, "discarded" => n}, left_executing: n}`.
  """
  @spec stop_all([pid()]) :: [map()]
  def stop_all(pids) do
    Enum.each(pids, &send(&1, {:stop, self()}))

    for pid <- pids do
      receive do
        {:producer_stopped, ^pid, summary} -> summary
      end
    end
  end

  defp loop(state) do
    receive do
      {:notification, :insert, %{"queue" => queue}} when queue == state.queue ->
        loop(schedule_dispatch(state))

      :poll ->
        Process.send_after(self(), :poll, @poll_ms)
        loop(schedule_dispatch(state))

      :dispatch ->
        loop(dispatch(%{state | pending: false}))

      {ref, job_state} when is_map_key(state.running, ref) ->
        Process.demonitor(ref, [:flush])
        counts = Map.update(state.counts, job_state, 1, &(&1 + 1))
        state = %{state | running: Map.delete(state.running, ref), counts: counts}
        maybe_finish(state) || loop(schedule_dispatch(state))

      {:stop, from} ->
        Process.send_after(self(), :grace_expired, @grace_ms)
        state = %{state | stopping: from}
        maybe_finish(state) || loop(state)

      :grace_expired ->
        finish(state)
    end
  end

  defp schedule_dispatch(%{pending: false, stopping: nil} = state) do
    Process.send_after(self(), :dispatch, @cooldown_ms)
    %{state | pending: true}
  end

  defp schedule_dispatch(state), do: state

  defp dispatch(%{stopping: nil} = state) do
    demand = state.limit - map_size(state.running)

    if demand > 0 do
      jobs = Engine.fetch_jobs(state.repo, state.queue, demand, state.node, state.uuid)

      running =
        Enum.reduce(jobs, state.running, fn job, running ->
          task = Task.async(fn -> Executor.run(state.repo, job) end)
          Map.put(running, task.ref, job)
        end)

      %{state | running: running}
    else
      state
    end
  end

  defp dispatch(state), do: state

  defp maybe_finish(%{stopping: from, running: running} = state)
       when is_pid(from) and map_size(running) == 0,
       do: finish(state)

  defp maybe_finish(_state), do: nil

  defp finish(state) do
    summary = %{counts: state.counts, left_executing: map_size(state.running)}
    send(state.stopping, {:producer_stopped, self(), summary})
    # Running tasks are linked: leaving now takes them down with us, as Oban does after the grace
    # period. Their jobs stay `executing` until something rescues them.
    if map_size(state.running) > 0, do: exit(:shutdown), else: :ok
  end
end
