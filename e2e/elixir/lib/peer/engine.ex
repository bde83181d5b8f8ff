defmodule Peer.Engine do
  @moduledoc """
  The SQL that Elixir Oban 2.23 (Basic engine, Postgres notifier, database peers, stager) sends,
  written out by hand. Statements keep the shape Ecto generates (aliases `o0`, `so0`, quoted
  names) so they can be compared with Oban's logs; citations are to oban-bg/oban@v2.23.1 and to
  the protocol (/work/shared/oban-protocol.md).

  Like Elixir (and unlike oban-py), timestamps come from the application clock,
  `DateTime.utc_now/0`, and are sent as parameters (protocol §0, §11.2).
  """

  alias Peer.{JSON, Repo}

  @prefix "public"
  @jobs ~s("#{@prefix}"."oban_jobs")
  @peers ~s("#{@prefix}"."oban_peers")

  # PostgreSQL accepts at most 65,535 bind parameters in one statement.
  @max_params 65_535
  @insert_columns ~w(args attempt errors max_attempts meta queue state tags worker)

  @doc "The full channel name for an Oban channel, e.g. `public.oban_insert` (protocol §7.1)."
  @spec channel(atom()) :: String.t()
  def channel(name), do: "#{@prefix}.oban_#{name}"

  @doc "Application UTC now as Elixir stamps it (microsecond precision)."
  @spec now() :: DateTime.t()
  def now, do: DateTime.utc_now()

  ## Inserting (lib/oban/engines/basic.ex insert_all_jobs, lib/oban/engine.ex; protocol §2.3-2.4)

  @doc """
  `Oban.insert_all/1` for jobs built like `Oban.Job.new(args, worker: w, queue: q)`: the nine
  non-nil fields of each changeset in one multi-row INSERT, everything else (id, priority,
  inserted_at, scheduled_at) left to the table's defaults, `ON CONFLICT DO NOTHING`, all columns
  returned. Oban itself does not chunk; this peer splits batches that would pass 65,535
  parameters into several statements in one transaction. Then one `{"queue": q}` insert
  notification per queue with available jobs, after the insert, as Oban does.

  `jobs` are maps with `:args`, `:queue`, `:worker` and optionally `:max_attempts` (default 20).
  The repo must not be shared with other processes during the call. Returns the inserted jobs.
  """
  @spec insert_all(GenServer.server(), [map()]) :: [Oban.Job.t()]
  def insert_all(repo, jobs) do
    per_statement = div(@max_params, length(@insert_columns))

    inserted =
      Repo.transaction(repo, fn ->
        jobs
        |> Enum.chunk_every(per_statement)
        |> Enum.flat_map(&insert_chunk(repo, &1))
      end)

    queues = for job <- inserted, job.state == "available", uniq: true, do: %{queue: job.queue}
    if queues != [], do: notify(repo, :insert, queues)

    inserted
  end

  defp insert_chunk(repo, jobs) do
    width = length(@insert_columns)

    values =
      jobs
      |> Enum.with_index()
      |> Enum.map_join(",", fn {_job, row} ->
        "(" <> Enum.map_join(1..width, ",", &"$#{row * width + &1}") <> ")"
      end)

    params =
      Enum.flat_map(jobs, fn job ->
        # args, attempt, errors, max_attempts, meta, queue, state, tags, worker
        [JSON.encode!(job.args), 0, "{}", Map.get(job, :max_attempts, 20), "{}"] ++
          [job.queue, "available", "{}", job.worker]
      end)

    columns = Enum.map_join(@insert_columns, ",", &~s("#{&1}"))

    sql = """
    INSERT INTO #{@jobs} AS o0 (#{columns}) VALUES #{values} \
    ON CONFLICT DO NOTHING RETURNING row_to_json(o0)::text\
    """

    repo |> Repo.query!(sql, params) |> to_jobs()
  end

  ## Fetching (lib/oban/engines/basic.ex fetch_jobs; protocol §3.1)

  @doc """
  Claims up to `demand` available jobs of `queue` for producer `uuid` on `node`: a CTE picks
  them in (priority, scheduled_at, id) order with `FOR UPDATE SKIP LOCKED` (the CTE is the
  optimisation fence Oban uses so no more than `demand` rows are updated), and those still
  below max_attempts become `executing`, attempt + 1, attempted_at now, attempted_by
  `[node, uuid]`.
  """
  @spec fetch_jobs(GenServer.server(), String.t(), pos_integer(), String.t(), String.t()) ::
          [Oban.Job.t()]
  def fetch_jobs(repo, queue, demand, node, uuid) do
    sql = """
    WITH "subset" AS (SELECT so0."id" AS "id" FROM #{@jobs} AS so0 \
    WHERE (so0."state" = 'available') AND (so0."queue" = $1) \
    ORDER BY so0."priority", so0."scheduled_at", so0."id" LIMIT $2 FOR UPDATE SKIP LOCKED) \
    UPDATE #{@jobs} AS o0 SET "state" = 'executing', "attempted_at" = $3, \
    "attempted_by" = ARRAY[$4::text, $5::text], "attempt" = o0."attempt" + 1 \
    FROM "subset" AS f1 WHERE (o0."id" = f1."id") AND (o0."attempt" < o0."max_attempts") \
    RETURNING row_to_json(o0)::text\
    """

    repo |> Repo.query!(sql, [queue, demand, ts(now()), node, uuid]) |> to_jobs()
  end

  ## Acknowledging (lib/oban/engines/basic.ex; protocol §4). Oban's acks match the id only.

  @doc "Marks a job completed (`complete_job`)."
  @spec complete_job(GenServer.server(), Oban.Job.t()) :: :ok
  def complete_job(repo, %Oban.Job{id: id}) do
    sql =
      ~s|UPDATE #{@jobs} AS o0 SET "state" = 'completed', "completed_at" = $1 WHERE (o0."id" = $2)|

    Repo.query!(repo, sql, [ts(now()), id])
    :ok
  end

  @doc "Records a failure and schedules the retry `seconds` from now (`error_job`)."
  @spec error_job(GenServer.server(), Oban.Job.t(), non_neg_integer()) :: :ok
  def error_job(repo, %Oban.Job{} = job, seconds) do
    sql = """
    UPDATE #{@jobs} AS o0 SET "state" = 'retryable', "scheduled_at" = $1, \
    "errors" = o0."errors" || $2::jsonb WHERE (o0."id" = $3)\
    """

    at = DateTime.add(now(), seconds, :second)
    Repo.query!(repo, sql, [ts(at), error_entry(job), job.id])
    :ok
  end

  @doc "Records a failure and gives up on the job (`discard_job`)."
  @spec discard_job(GenServer.server(), Oban.Job.t()) :: :ok
  def discard_job(repo, %Oban.Job{} = job) do
    sql = """
    UPDATE #{@jobs} AS o0 SET "state" = 'discarded', "discarded_at" = $1, \
    "errors" = o0."errors" || $2::jsonb WHERE (o0."id" = $3)\
    """

    Repo.query!(repo, sql, [ts(now()), error_entry(job), job.id])
    :ok
  end

  # Oban.Job.format_attempt/1. Oban binds a one-element jsonb[] and PostgreSQL's `||` appends it;
  # appending the element itself stores the same array, and also works on oban-py's jsonb column.
  defp error_entry(%Oban.Job{attempt: attempt, unsaved_error: unsaved}) do
    %{kind: kind, reason: reason, stacktrace: stacktrace} = unsaved
    {blamed, stacktrace} = Exception.blame(kind, reason, stacktrace)
    error = Exception.format(kind, blamed, stacktrace)

    JSON.encode!(%{attempt: attempt, at: now(), error: error})
  end

  ## Notifying (lib/oban/notifier.ex, lib/oban/notifiers/postgres.ex; protocol §7)

  @doc """
  Publishes payloads on an Oban channel with Oban's single statement: one `pg_notify` per
  element of a JSON array of encoded payloads. Payloads over 512 bytes are gzipped and base64
  encoded behind `Z:`, as Elixir ≥ 2.21 does.
  """
  @spec notify(GenServer.server(), atom(), [map()]) :: :ok
  def notify(repo, channel, payloads) do
    encoded = Enum.map(payloads, &encode_payload/1)
    sql = "SELECT pg_notify($1, payload) FROM json_array_elements_text($2::json) AS payload"
    Repo.query!(repo, sql, [channel(channel), JSON.encode!(encoded)])
    :ok
  end

  defp encode_payload(payload) do
    json = JSON.encode!(payload)
    if byte_size(json) > 512, do: "Z:" <> Base.encode64(:zlib.gzip(json)), else: json
  end

  @doc "Decodes a notification payload in any of the three forms Oban accepts."
  @spec decode_payload(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode_payload("Z:" <> compressed), do: decode_payload(compressed)

  def decode_payload("H4sI" <> _ = compressed) do
    with {:ok, gzipped} <- Base.decode64(compressed) do
      JSON.decode(:zlib.gunzip(gzipped))
    else
      :error -> {:error, "bad base64"}
    end
  end

  def decode_payload(json), do: JSON.decode(json)

  ## Queue control (lib/oban.ex start_queue/2, stop_queue/2, scope_signal/2; protocol §7.3)

  @doc """
  The `signal` payload of `Oban.start_queue/2` (`action` "start") or `Oban.stop_queue/2`
  (`action` "stop") sent from the node `sender`. `opts` are the call's options as a map with
  string keys: stop keeps only `queue`; start keeps every option but `node` (so `local_only`
  stays in the payload, as Oban's `Map.drop([:node])` leaves it). The ident is the sender's own
  with `local_only`, the named node's with `node`, else "any". Elixir's Midwife starts a queue
  with every key but action, ident and local_only, and stops it by name.
  """
  @spec queue_signal(String.t(), map(), String.t()) :: map()
  def queue_signal(action, opts, sender) do
    ident =
      cond do
        opts["local_only"] -> "Oban.#{sender}"
        Map.has_key?(opts, "node") -> "Oban.#{opts["node"]}"
        true -> "any"
      end

    data =
      case action do
        "start" -> Map.delete(opts, "node")
        "stop" -> Map.take(opts, ["queue"])
      end

    Map.merge(data, %{"action" => action, "ident" => ident})
  end

  ## Staging, leader only (lib/oban/stager.ex; protocol §5.1)

  @doc """
  Makes up to `limit` due scheduled/retryable jobs of every queue available (latest first, no
  SKIP LOCKED), then announces every queue that has available jobs, in one transaction.
  Returns the number of staged jobs.
  """
  @spec stage_jobs(GenServer.server(), pos_integer()) :: non_neg_integer()
  def stage_jobs(repo, limit) do
    stage = """
    UPDATE #{@jobs} AS o0 SET "state" = 'available' FROM (SELECT so0."id" AS "id", \
    so0."state" AS "state" FROM #{@jobs} AS so0 \
    WHERE (so0."state" IN ('scheduled', 'retryable')) AND (so0."scheduled_at" <= $1) \
    ORDER BY so0."scheduled_at" DESC, so0."id" DESC LIMIT $2) AS s1 \
    WHERE (o0."id" = s1."id") RETURNING o0."id", o0."queue", s1."state"::text\
    """

    available = """
    SELECT DISTINCT o0."queue" FROM #{@jobs} AS o0 \
    WHERE (o0."state" = 'available') AND (NOT (o0."queue" IS NULL))\
    """

    Repo.transaction(repo, fn ->
      %{num_rows: staged} = Repo.query!(repo, stage, [ts(now()), limit])
      %{rows: rows} = Repo.query!(repo, available)
      queues = for [queue] <- rows, do: %{queue: queue}
      if queues != [], do: notify(repo, :insert, queues)
      staged
    end)
  end

  ## Leadership (lib/oban/peers/database.ex; protocol §6.1)

  @doc """
  One election for instance `name` on `node`, in one transaction: drop this name's expired row,
  then insert ours, or on conflict extend `expires_at` only if the row is already ours. Returns
  whether this node leads.
  """
  @spec elect(GenServer.server(), String.t(), String.t(), pos_integer()) :: boolean()
  def elect(repo, name, node, ttl_ms) do
    delete_expired =
      ~s|DELETE FROM #{@peers} AS o0 WHERE (o0."name" = $1) AND (o0."expires_at" < $2)|

    upsert = """
    INSERT INTO #{@peers} AS o0 ("expires_at","name","node","started_at") VALUES ($1,$2,$3,$4) \
    ON CONFLICT ("name") DO UPDATE SET "expires_at" = $5 WHERE (o0."node" = $6)\
    """

    started_at = now()
    expires_at = DateTime.add(started_at, ttl_ms, :millisecond)

    Repo.transaction(repo, fn ->
      Repo.query!(repo, delete_expired, [name, ts(started_at)])

      %{num_rows: rows} =
        Repo.query!(repo, upsert, [
          ts(expires_at),
          name,
          node,
          ts(started_at),
          ts(expires_at),
          node
        ])

      rows == 1
    end)
  end

  @doc "Resigns: deletes our own row and publishes `{\"down\": name}` on `leader`."
  @spec resign(GenServer.server(), String.t(), String.t()) :: :ok
  def resign(repo, name, node) do
    Repo.transaction(repo, fn ->
      sql = ~s|DELETE FROM #{@peers} AS o0 WHERE ((o0."name" = $1) AND (o0."node" = $2))|
      Repo.query!(repo, sql, [name, node])
      notify(repo, :leader, [%{down: name}])
    end)
  end

  ## Helpers

  defp to_jobs(%{rows: rows}),
    do: Enum.map(rows, fn [json] -> Oban.Job.from_json(JSON.decode!(json)) end)

  # Naive ISO-8601 text; PostgreSQL parses it as the `timestamp` column's type.
  defp ts(%DateTime{} = dt), do: dt |> DateTime.to_naive() |> NaiveDateTime.to_iso8601()
end
