defmodule BadgeForge.Heartbeat do
  @moduledoc """
  Elixir-only work for the coexistence check: one job per second on queue `elixir_only`,
  worker `BadgeForge.Heartbeat`, enqueued and consumed by this node alone. A Rust node sharing
  the database must never claim them (it does not run that queue).
  """

  alias Peer.{Engine, Out, Repo}

  @queue "elixir_only"
  @every_ms 1_000

  @doc "The queue these jobs use."
  @spec queue() :: String.t()
  def queue, do: @queue

  @doc "Completes any heartbeat."
  @spec perform(Oban.Job.t()) :: :ok
  def perform(%Oban.Job{args: %{"n" => n}}) when is_integer(n), do: :ok

  @doc "Starts the enqueuer (its own connection), linked to the caller."
  @spec start_link(String.t(), String.t()) :: pid()
  def start_link(url, node) do
    spawn_link(fn ->
      {:ok, repo} = Repo.start_link(url)
      enqueue_every_second(repo, node, 1)
    end)
  end

  @doc "Stops the enqueuer."
  @spec stop(pid()) :: :ok
  def stop(pid) do
    send(pid, {:stop, self()})

    receive do
      {:heartbeat_stopped, ^pid} -> :ok
    end
  end

  defp enqueue_every_second(repo, node, n) do
    [job] =
      Engine.insert_all(repo, [
        %{args: %{n: n, node: node}, worker: inspect(__MODULE__), queue: @queue}
      ])

    Out.event("enqueued", %{job_id: job.id, queue: @queue, worker: job.worker, args: job.args})

    receive do
      {:stop, from} ->
        GenServer.stop(repo)
        send(from, {:heartbeat_stopped, self()})
    after
      @every_ms -> enqueue_every_second(repo, node, n + 1)
    end
  end
end
