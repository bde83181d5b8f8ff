defmodule Peer.Repo do
  @moduledoc """
  One PostgreSQL connection through Debian's `:pgsql` driver (erlang-p1-pgsql), shaped a little
  like an Ecto repo: `query/3` with `$n` parameters, `transaction/2`.

  Why a process around the driver's own process: a parameterised query is two driver calls
  (prepare a statement, then execute it), so callers sharing a connection (a producer and its
  running jobs) must not interleave them. Statements are prepared once per connection and
  reused, as Postgrex does, saving a round trip per query.

  Driver facts this module relies on (read from p1_pgsql 1.1.20):
  - `:pgsql.pquery/3` never returns for a failing statement or one without result columns, so we
    use `prepare` + `execute`, which report `{:error, fields}` properly.
  - `execute` exits on a NOTICE, so statements that may raise notices (DDL, `BEGIN`/`COMMIT`) go
    through `simple/2` (the simple query protocol), which skips them.
  - Parameters given as binaries are sent in binary format; we wrap them in a list so that they
    go in text format and PostgreSQL parses them as the column's type (jsonb, timestamp, enum).
  - Results come back in binary format; integers are decoded, every other type is returned raw,
    so queries cast other columns to `text`. A NULL integer column crashes the driver, so never
    select one.
  - `:pgsql.prepare/3` and `execute/3` have a fixed 5 s call timeout; we send the same requests
    with a longer one so a big insert on a busy machine does not time out.
  - The driver writes a statement's protocol messages in several small packets and leaves
    Nagle's algorithm on, which costs ~40 ms per query (delayed ACK); we switch it off on the
    driver's socket after connecting (0.4 ms per query instead).
  """

  use GenServer

  @timeout 120_000

  defmodule Error do
    defexception [:message, :code]
  end

  @doc "Starts a connection for a `postgres://user[:pass]@host[:port]/db` URL."
  @spec start_link(String.t(), keyword()) :: GenServer.on_start()
  def start_link(url, opts \\ []) do
    GenServer.start_link(__MODULE__, parse_url(url), opts)
  end

  @doc """
  Starts `size` connections that serve as one repo under `name` (Oban gets the same from Ecto's
  pool): each caller process is mapped to one of them, so jobs running side by side commit side
  by side and PostgreSQL can group their fsyncs. A process's statements may share a connection
  with another process's, so a pool does not offer `transaction/2`.
  """
  @spec start_pool(String.t(), atom(), pos_integer()) :: :ok | {:error, term()}
  def start_pool(url, name, size) do
    pids =
      Enum.reduce_while(1..size, [], fn _, pids ->
        case start_link(url) do
          {:ok, pid} -> {:cont, [pid | pids]}
          {:error, reason} -> {:halt, {:error, reason}}
        end
      end)

    with pids when is_list(pids) <- pids do
      :persistent_term.put({__MODULE__, name}, List.to_tuple(pids))
    end
  end

  @doc """
  Runs one statement with `$n` parameters (`nil`, integers or binaries). Returns
  `{:ok, %{rows: rows, num_rows: n}}` where each row is a list of integers, binaries or `nil`.
  """
  @spec query(GenServer.server(), String.t(), list()) :: {:ok, map()} | {:error, Error.t()}
  def query(repo, sql, params \\ []) do
    GenServer.call(member(repo), {:query, sql, params}, @timeout)
  end

  @doc "Like `query/3`, raising `Peer.Repo.Error` on failure."
  @spec query!(GenServer.server(), String.t(), list()) :: map()
  def query!(repo, sql, params \\ []) do
    case query(repo, sql, params) do
      {:ok, result} -> result
      {:error, error} -> raise error
    end
  end

  @doc "Runs statements without parameters through the simple query protocol; raises on error."
  @spec simple!(GenServer.server(), String.t()) :: :ok
  def simple!(repo, sql) do
    case GenServer.call(member(repo), {:simple, sql}, @timeout) do
      :ok -> :ok
      {:error, error} -> raise error
    end
  end

  @doc """
  Runs `fun` between `BEGIN` and `COMMIT` (`ROLLBACK` if it raises). The caller must be the only
  user of this connection meanwhile.
  """
  @spec transaction(GenServer.server(), (() -> result)) :: result when result: term()
  def transaction(repo, fun) do
    simple!(repo, "BEGIN")

    try do
      result = fun.()
      simple!(repo, "COMMIT")
      result
    rescue
      error ->
        simple!(repo, "ROLLBACK")
        reraise error, __STACKTRACE__
    end
  end

  defp member(name) when is_atom(name) do
    case :persistent_term.get({__MODULE__, name}, nil) do
      nil -> name
      pool -> elem(pool, :erlang.phash2(self(), tuple_size(pool)))
    end
  end

  defp member(repo), do: repo

  @doc "Splits a DATABASE_URL into the options `:pgsql.connect/1` takes."
  @spec parse_url(String.t()) :: keyword()
  def parse_url(url) do
    uri = URI.parse(url)

    unless uri.scheme in ["postgres", "postgresql"] and uri.host not in [nil, ""] do
      raise ArgumentError, "DATABASE_URL must look like postgres://user[:pass]@host:port/db"
    end

    {user, password} =
      case String.split(uri.userinfo || "", ":", parts: 2) do
        [user, pass] -> {URI.decode(user), URI.decode(pass)}
        [user] -> {URI.decode(user), ""}
      end

    [
      host: uri.host,
      port: uri.port || 5432,
      database: URI.decode(String.trim_leading(uri.path || "", "/")),
      user: if(user == "", do: System.get_env("USER", "postgres"), else: user),
      password: password
    ]
  end

  ## Server

  @impl GenServer
  def init(opts) do
    # The driver prints "Sock closed" with io:format when the server drops a connection; its
    # processes inherit our group leader, so point it at stderr to keep stdout machine-readable.
    Process.group_leader(self(), Process.whereis(:standard_error))

    case :pgsql.connect([{:as_binary, true} | opts]) do
      {:ok, conn} ->
        set_nodelay(conn)
        {:ok, %{conn: conn, prepared: %{}}}

      {:error, reason} ->
        {:stop, {:connect_failed, opts[:host], opts[:port], reason}}
    end
  end

  # The socket is a field of the driver process's state record, stored as {:gen_tcp, port}.
  defp set_nodelay(conn) do
    {:gen_tcp, socket} =
      conn |> :sys.get_state() |> Tuple.to_list() |> Enum.find(&match?({:gen_tcp, _}, &1))

    :ok = :inet.setopts(socket, nodelay: true)
  end

  @impl GenServer
  def handle_call({:query, sql, params}, _from, state) do
    {reply, state} =
      with {:ok, name, state} <- prepare(state, sql),
           {:ok, {command, rows}} <-
             :gen_server.call(
               state.conn,
               {:execute, {name, Enum.map(params, &param/1)}},
               @timeout
             ) do
        {{:ok, result(command, rows)}, state}
      else
        {:error, fields} -> {{:error, error(fields, sql)}, state}
      end

    {:reply, reply, state}
  end

  def handle_call({:simple, sql}, _from, state) do
    {:ok, results} = :pgsql.squery(state.conn, sql, @timeout)

    reply =
      case List.keyfind(results, :error, 0) do
        nil -> :ok
        {:error, fields} -> {:error, error(fields, sql)}
      end

    {:reply, reply, state}
  end

  @impl GenServer
  def terminate(_reason, state) do
    :pgsql.terminate(state.conn)
  catch
    # The driver process is gone already when the server closed the connection.
    :exit, _reason -> :ok
  end

  defp prepare(%{prepared: prepared} = state, sql) when is_map_key(prepared, sql) do
    {:ok, Map.fetch!(prepared, sql), state}
  end

  defp prepare(state, sql) do
    name = "peer_#{map_size(state.prepared) + 1}"

    case :gen_server.call(state.conn, {:prepare, {name, sql}}, @timeout) do
      {:ok, _status, _param_types, _columns} -> {:ok, name, put_in(state.prepared[sql], name)}
      {:error, fields} -> {:error, fields}
    end
  end

  defp param(nil), do: :null
  defp param(int) when is_integer(int), do: int
  defp param(bin) when is_binary(bin), do: [bin]

  # `rows` is a list for statements with result columns, otherwise the driver hands back
  # {:UPDATE, n}-style tuples in place of (command, rows).
  defp result(command, rows) when is_list(rows) and is_binary(command) do
    %{rows: Enum.map(rows, fn row -> Enum.map(row, &column/1) end), num_rows: length(rows)}
  end

  defp result(_command, count) when is_integer(count), do: %{rows: [], num_rows: count}
  defp result(_command, _other), do: %{rows: [], num_rows: 0}

  defp column({_type, :null}), do: nil
  defp column({type, int}) when type in [:int2, :int4, :int8], do: String.to_integer(int)
  defp column({:bool, flag}), do: flag == "1"
  defp column({_type, raw}), do: raw

  defp error(fields, sql) do
    message = Keyword.get(fields, :message, "unknown error")
    detail = if fields[:detail], do: " (#{fields[:detail]})", else: ""
    short_sql = sql |> String.replace(~r/\s+/, " ") |> String.slice(0, 160)
    %Error{message: "#{message}#{detail} in: #{short_sql}", code: fields[:code]}
  end
end
