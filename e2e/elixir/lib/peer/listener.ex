defmodule Peer.Listener do
  @moduledoc """
  A dedicated LISTEN connection, speaking the PostgreSQL wire protocol over `:gen_tcp`.

  Why not the `:pgsql` driver: it drops asynchronous NotificationResponse messages (it decodes
  them as "unknown" and discards the payload), so Oban's insert notifications would be lost.
  Authentication (trust, password, md5, SCRAM-SHA-256 via the driver's `:pgsql_sasl`) is done
  here. Each notification is sent to the owner as `{:notification, channel, payload}` with the
  channel's short name (`:insert`, `:leader`, ...) and the payload decoded as Oban decodes it.
  The process is linked to its owner; a lost connection ends it (Oban would reconnect; for a
  test peer a lost database is fatal, and the producers poll every second anyway).
  """

  alias Peer.Engine

  @doc """
  Connects, LISTENs on the given Oban channels (e.g. `[:insert, :leader]`) and returns once
  PostgreSQL has confirmed the LISTEN, so nothing published afterwards is missed.
  """
  @spec start_link(keyword(), [atom()], pid()) :: pid()
  def start_link(conn_opts, channels, owner) do
    caller = self()
    pid = spawn_link(fn -> init(conn_opts, channels, owner, caller) end)

    receive do
      {:listening, ^pid} -> pid
      {:EXIT, ^pid, reason} -> raise "LISTEN connection failed: #{inspect(reason)}"
    after
      15_000 -> raise "LISTEN connection did not become ready within 15 s"
    end
  end

  defp init(opts, channels, owner, caller) do
    host = String.to_charlist(opts[:host])
    {:ok, sock} = :gen_tcp.connect(host, opts[:port], [:binary, active: false], 10_000)

    params = [
      "user",
      opts[:user],
      "database",
      opts[:database],
      "application_name",
      "badge-forge-elixir-peer"
    ]

    startup = <<3::16, 0::16, Enum.map_join(params, &(&1 <> <<0>>))::binary, 0>>
    :ok = :gen_tcp.send(sock, <<byte_size(startup) + 4::32, startup::binary>>)
    authenticate(sock, opts, nil)

    by_name = Map.new(channels, &{Engine.channel(&1), &1})
    listen = Enum.map_join(Map.keys(by_name), " ", &~s(LISTEN "#{&1}";))
    send_msg(sock, ?Q, listen <> <<0>>)
    await_ready(sock)
    send(caller, {:listening, self()})

    loop(sock, owner, by_name)
  end

  defp loop(sock, owner, by_name) do
    case recv(sock) do
      {?A, <<_pid::32, body::binary>>} ->
        [channel, payload, _] = :binary.split(body, <<0>>, [:global])

        case Engine.decode_payload(payload) do
          {:ok, decoded} -> send(owner, {:notification, Map.fetch!(by_name, channel), decoded})
          {:error, why} -> IO.puts(:stderr, "[peer] undecodable #{channel} payload (#{why})")
        end

      {?E, body} ->
        raise "LISTEN connection error: #{error_message(body)}"

      _parameter_status_or_notice ->
        :ok
    end

    loop(sock, owner, by_name)
  end

  defp authenticate(sock, opts, sasl) do
    case recv(sock) do
      {?R, <<0::32>>} ->
        await_ready(sock)

      {?R, <<3::32>>} ->
        send_msg(sock, ?p, opts[:password] <> <<0>>)
        authenticate(sock, opts, sasl)

      {?R, <<5::32, salt::binary-4>>} ->
        inner = md5_hex(opts[:password] <> opts[:user])
        send_msg(sock, ?p, "md5" <> md5_hex(inner <> salt) <> <<0>>)
        authenticate(sock, opts, sasl)

      {?R, <<10::32, mechanisms::binary>>} ->
        mechs = :binary.split(mechanisms, <<0>>, [:global, :trim_all])
        {:ok, mech, first, sasl} = :pgsql_sasl.client_new(opts[:user], opts[:password], mechs)
        send_msg(sock, ?p, <<mech::binary, 0, byte_size(first)::32, first::binary>>)
        authenticate(sock, opts, sasl)

      {?R, <<11::32, server_first::binary>>} ->
        {:ok, final, sasl} = :pgsql_sasl.client_step(sasl, server_first)
        send_msg(sock, ?p, final)
        authenticate(sock, opts, sasl)

      {?R, <<12::32, server_final::binary>>} ->
        :ok = :pgsql_sasl.client_finish(sasl, server_final)
        authenticate(sock, opts, nil)

      {?E, body} ->
        raise "LISTEN connection refused: #{error_message(body)}"
    end
  end

  defp await_ready(sock) do
    case recv(sock) do
      {?Z, _status} -> :ok
      {?E, body} -> raise "LISTEN connection error: #{error_message(body)}"
      _other -> await_ready(sock)
    end
  end

  defp recv(sock) do
    {:ok, <<type, len::32>>} = :gen_tcp.recv(sock, 5)
    {:ok, body} = if len > 4, do: :gen_tcp.recv(sock, len - 4), else: {:ok, ""}
    {type, body}
  end

  defp send_msg(sock, type, body),
    do: :ok = :gen_tcp.send(sock, <<type, byte_size(body) + 4::32, body::binary>>)

  defp md5_hex(data), do: Base.encode16(:crypto.hash(:md5, data), case: :lower)

  defp error_message(body) do
    fields =
      for <<code, text::binary>> <- :binary.split(body, <<0>>, [:global, :trim_all]),
          do: {code, text}

    List.keyfind(fields, ?M, 0, {?M, "unknown error"}) |> elem(1)
  end
end
