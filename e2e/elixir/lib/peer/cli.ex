defmodule Peer.CLI do
  @moduledoc """
  The command line of the Elixir peer (see README.md). Exit codes: 0 done, 1 failure
  (database error, crash), 2 usage error. Events go to stdout as JSON lines, logs to stderr.
  """

  alias Peer.{Leader, Listener, Out, Producer, Repo}

  @usage """
  usage: elixir e2e/elixir/peer.exs <command> [options]      (DATABASE_URL must be set)

    enqueue N [--seed S]        BadgeForge.enqueue_batch(N): N badge jobs, one Oban.insert_all
    enqueue [N] --bad           the malformed badge jobs (plus N good ones) in one insert_all
    print-center [--node NAME] [--limit 10] [--coexist] [--no-leader]
                                run queue `printing` (BadgeForge.PrintCenter) until SIGTERM or
                                end of stdin; --coexist also runs queue `elixir_only`
    coexist [--node NAME] [--limit 10] [--no-leader]
                                run only queue `elixir_only`, enqueuing one job per second
    queue start Q --limit N [--paused] [--local-only] [--node NAME] [--as NAME]
    queue stop Q [--local-only] [--node NAME] [--as NAME]
                                Oban.start_queue/stop_queue: publish the `signal` Elixir
                                sends (--as: the sending node, default elixir-peer@<host>)
  """

  defmodule UsageError do
    defexception [:message]
  end

  defmodule Failure do
    @moduledoc "An expected failure (e.g. no database), reported without a stack trace."
    defexception [:message]
  end

  @doc "Runs a command and halts the VM with its exit code."
  @spec main([String.t()]) :: no_return()
  def main(argv) do
    # Linked processes (connections, producers) report failures as messages instead of
    # killing this process, so every failure ends in a log line and exit code 1.
    Process.flag(:trap_exit, true)
    # Crash reports of the driver's processes include its whole type table; keep them short.
    Logger.configure(truncate: 2048)

    code =
      try do
        run(argv)
      rescue
        error in UsageError ->
          IO.puts(:stderr, "#{error.message}\n\n#{@usage}")
          2

        error in Failure ->
          Out.log(error.message)
          1

        error ->
          Out.log(Exception.format(:error, error, __STACKTRACE__))
          1
      catch
        :exit, reason ->
          Out.log("exited: #{inspect(reason)}")
          1
      end

    System.halt(code)
  end

  defp run(["enqueue" | argv]) do
    {opts, args} = parse(argv, seed: :integer, bad: :boolean)
    bad? = Keyword.get(opts, :bad, false)

    n =
      case args do
        [n] -> parse_count(n)
        [] when bad? -> 0
        _ -> raise UsageError, "enqueue needs a job count"
      end

    if seed = opts[:seed], do: :rand.seed(:exsss, seed)
    repo = connect!()
    started = System.monotonic_time(:millisecond)

    jobs =
      if bad?,
        do: BadgeForge.enqueue_bad(repo, n),
        else: Enum.map(BadgeForge.enqueue_batch(repo, n), &{"ok", &1})

    seconds = (System.monotonic_time(:millisecond) - started) / 1000

    for {kind, job} <- jobs do
      Out.event("enqueued", %{
        job_id: job.id,
        queue: job.queue,
        worker: job.worker,
        case: kind,
        args: job.args
      })
    end

    Out.event("enqueue_done", %{count: length(jobs), seconds: seconds})
    Out.log("enqueued #{length(jobs)} badge jobs in #{seconds} s")
    0
  end

  defp run(["print-center" | argv]) do
    opts =
      parse_options(argv, node: :string, limit: :integer, coexist: :boolean, leader: :boolean)

    queues = if opts[:coexist], do: ["printing", BadgeForge.Heartbeat.queue()], else: ["printing"]
    run_node(queues, opts)
  end

  defp run(["coexist" | argv]) do
    opts = parse_options(argv, node: :string, limit: :integer, leader: :boolean)
    run_node([BadgeForge.Heartbeat.queue()], Keyword.put(opts, :coexist, true))
  end

  defp run(["queue", action, queue | argv]) when action in ["start", "stop"] do
    switches = [limit: :integer, paused: :boolean, local_only: :boolean, node: :string, as: :string]
    opts = parse_options(argv, switches)

    if action == "start" and not (is_integer(opts[:limit]) and opts[:limit] > 0),
      do: raise(UsageError, "queue start needs --limit N (N > 0)")

    call_opts =
      opts
      |> Keyword.delete(:as)
      |> Map.new(fn {key, value} -> {Atom.to_string(key), value} end)
      |> Map.put("queue", queue)

    payload = Peer.Engine.queue_signal(action, call_opts, opts[:as] || default_node())
    Peer.Engine.notify(connect!(), :signal, [payload])
    Out.event("signalled", payload)
    0
  end

  defp run(_argv), do: raise(UsageError, "unknown command")

  # An Elixir node with `queues: [printing: limit]` (and/or `elixir_only`), the default peer
  # and the Postgres notifier, until SIGTERM or end of stdin.
  defp run_node(queues, opts) do
    node = opts[:node] || default_node()
    limit = opts[:limit] || 10
    if limit < 1, do: raise(UsageError, "--limit must be at least 1")

    repo = BadgeForge.Repo

    case Repo.start_pool(database_url(), repo, limit) do
      :ok -> :ok
      {:error, reason} -> raise Failure, "cannot connect to DATABASE_URL: #{inspect(reason)}"
    end

    if "printing" in queues, do: BadgeForge.PrintCenter.setup(repo)

    Listener.start_link(Repo.parse_url(database_url()), [:insert, :leader], self())

    {leader, leader?} =
      if Keyword.get(opts, :leader, true),
        do: Leader.start_link(database_url(), node),
        else: {nil, false}

    producers =
      for queue <- queues do
        uuid = BadgeForge.uuid4()

        {queue, uuid,
         Producer.start_link(repo: repo, queue: queue, limit: limit, node: node, uuid: uuid)}
      end

    heartbeat = if opts[:coexist], do: BadgeForge.Heartbeat.start_link(database_url(), node)

    watch_for_stop()
    uuids = Map.new(producers, fn {queue, uuid, _pid} -> {queue, uuid} end)
    Out.event("ready", %{node: node, limit: limit, queues: uuids, leader: leader?})
    Out.log("#{node} running #{Enum.join(queues, ", ")}; leader: #{leader?}")

    {reason, notifications} =
      wait_for_stop(Map.new(producers, fn {q, _, pid} -> {q, pid} end), leader, %{})

    Out.log("stopping (#{reason})")

    if heartbeat, do: BadgeForge.Heartbeat.stop(heartbeat)
    summaries = Producer.stop_all(Enum.map(producers, fn {_, _, pid} -> pid end))
    if leader, do: Leader.stop(leader)

    queue_summaries = Map.new(Enum.zip(queues, summaries))

    Out.event("stopped", %{
      node: node,
      reason: reason,
      queues: queue_summaries,
      insert_notifications: notifications
    })

    0
  end

  defp wait_for_stop(producers, leader, notifications) do
    receive do
      {:notification, :insert, %{"queue" => queue} = payload} ->
        if pid = producers[queue], do: send(pid, {:notification, :insert, payload})
        wait_for_stop(producers, leader, Map.update(notifications, queue, 1, &(&1 + 1)))

      {:notification, :leader, _payload} = message ->
        if leader, do: send(leader, message)
        wait_for_stop(producers, leader, notifications)

      {:notification, _channel, _payload} ->
        wait_for_stop(producers, leader, notifications)

      {:stop, reason} ->
        {reason, notifications}

      {:EXIT, _pid, :normal} ->
        wait_for_stop(producers, leader, notifications)

      {:EXIT, pid, reason} ->
        raise Failure, "linked process #{inspect(pid)} failed: #{inspect(reason)}"
    end
  end

  # SIGTERM and end of stdin both ask for a clean stop. The VM's own SIGTERM handler (which
  # stops the VM at once) is removed so that running jobs can finish.
  defp watch_for_stop do
    main = self()
    :ok = :gen_event.delete_handler(:erl_signal_server, :erl_signal_handler, :ok)

    {:ok, _} =
      System.trap_signal(:sigterm, fn ->
        send(main, {:stop, "sigterm"})
        :ok
      end)

    spawn(fn ->
      drain_stdin()
      send(main, {:stop, "stdin closed"})
    end)
  end

  defp drain_stdin do
    case IO.read(:stdio, :line) do
      line when is_binary(line) -> drain_stdin()
      _eof_or_error -> :ok
    end
  end

  defp connect! do
    case Repo.start_link(database_url()) do
      {:ok, repo} -> repo
      {:error, reason} -> raise Failure, "cannot connect to DATABASE_URL: #{inspect(reason)}"
    end
  end

  defp database_url do
    case System.get_env("DATABASE_URL") do
      url when is_binary(url) and url != "" -> url
      _ -> raise UsageError, "DATABASE_URL is not set"
    end
  end

  defp default_node do
    {:ok, host} = :inet.gethostname()
    "elixir-peer@#{host}"
  end

  defp parse(argv, switches) do
    case OptionParser.parse(argv, strict: switches) do
      {opts, args, []} -> {opts, args}
      {_, _, [{bad, _} | _]} -> raise UsageError, "bad option #{bad}"
    end
  end

  defp parse_options(argv, switches) do
    case parse(argv, switches) do
      {opts, []} -> opts
      {_opts, [extra | _]} -> raise UsageError, "unexpected argument #{extra}"
    end
  end

  defp parse_count(text) do
    case Integer.parse(text) do
      {n, ""} when n >= 0 -> n
      _ -> raise UsageError, "not a job count: #{text}"
    end
  end
end
