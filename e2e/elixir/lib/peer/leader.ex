defmodule Peer.Leader do
  @moduledoc """
  Leadership of the Oban instance `"Oban"` through `oban_peers` (`Oban.Peers.Database`), and
  the staging the leader does (`Oban.Stager`), as every Elixir node runs them by default:

  - an election at start, then every 30 s, or every 15 s while leading, each minus up to 10 %
    jitter; the row lives 30 s (protocol §6.1); a failed election means "not leader";
  - a `{"down": "Oban"}` message on the `leader` channel triggers an election at once;
  - while leading, every second: stage due scheduled/retryable jobs of all queues (up to 5,000)
    and announce `{"queue": q}` on `insert` for every queue with available jobs (§5.1);
  - on stop, a leader deletes its row and publishes `{"down": "Oban"}`.

  It owns its connection, because elections and staging are transactions.
  """

  alias Peer.{Engine, Out, Repo}

  @name "Oban"
  @interval_ms 30_000
  @stage_ms 1_000
  @stage_limit 5_000

  @doc """
  Starts the leader process, linked to the caller, after its first election. Returns
  `{pid, leader?}`.
  """
  @spec start_link(String.t(), String.t()) :: {pid(), boolean()}
  def start_link(url, node) do
    caller = self()

    pid =
      spawn_link(fn ->
        {:ok, repo} = Repo.start_link(url)
        state = elect(%{repo: repo, node: node, leader?: false, timer: nil})
        send(caller, {:elected, self(), state.leader?})
        Process.send_after(self(), :stage, @stage_ms)
        loop(state)
      end)

    receive do
      {:elected, ^pid, leader?} -> {pid, leader?}
      {:EXIT, ^pid, reason} -> raise "leader process failed to start: #{inspect(reason)}"
    end
  end

  @doc "Resigns if leading and stops."
  @spec stop(pid()) :: :ok
  def stop(pid) do
    send(pid, {:stop, self()})

    receive do
      {:leader_stopped, ^pid} -> :ok
    end
  end

  defp loop(state) do
    receive do
      :election ->
        loop(elect(state))

      {:notification, :leader, %{"down" => @name}} ->
        Process.cancel_timer(state.timer)
        loop(elect(state))

      {:notification, :leader, _other} ->
        loop(state)

      :stage ->
        if state.leader?, do: stage(state)
        Process.send_after(self(), :stage, @stage_ms)
        loop(state)

      {:stop, from} ->
        if state.leader?, do: Engine.resign(state.repo, @name, state.node)
        GenServer.stop(state.repo)
        send(from, {:leader_stopped, self()})
    end
  end

  defp elect(state) do
    leader? =
      try do
        Engine.elect(state.repo, @name, state.node, @interval_ms)
      rescue
        error in Repo.Error ->
          Out.log("election failed: #{Exception.message(error)}")
          false
      end

    if leader? != state.leader?, do: Out.event("leader", %{node: state.node, leader: leader?})

    base = if leader?, do: div(@interval_ms, 2), else: @interval_ms
    # Backoff.jitter(base, mode: :dec): up to 10 % earlier.
    delay = base - trunc(:rand.uniform() * 0.1 * base)
    %{state | leader?: leader?, timer: Process.send_after(self(), :election, delay)}
  end

  defp stage(state) do
    staged = Engine.stage_jobs(state.repo, @stage_limit)
    if staged > 0, do: Out.log("staged #{staged} jobs")
  rescue
    error in Repo.Error -> Out.log("staging failed: #{Exception.message(error)}")
  end
end
