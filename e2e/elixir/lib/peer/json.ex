defmodule Peer.JSON do
  @moduledoc """
  A small JSON encoder and decoder (OTP 25 has no `:json` and hex.pm, hence Jason, is out of reach).

  Encoding follows Jason's defaults, which is what Oban uses: compact, map keys as strings,
  non-ASCII left as UTF-8, only `"`, `\\` and control characters escaped, `DateTime` as ISO-8601.
  Decoding yields maps with string keys, lists, binaries, integers, floats, booleans and `nil`.
  """

  defmodule DecodeError do
    defexception [:message]
  end

  ## Encoding

  @doc "Encodes a term as a compact JSON binary."
  @spec encode!(term()) :: binary()
  def encode!(term), do: term |> enc() |> IO.iodata_to_binary()

  defp enc(nil), do: "null"
  defp enc(true), do: "true"
  defp enc(false), do: "false"
  defp enc(atom) when is_atom(atom), do: string(Atom.to_string(atom))
  defp enc(int) when is_integer(int), do: Integer.to_string(int)
  defp enc(float) when is_float(float), do: Float.to_string(float)
  defp enc(bin) when is_binary(bin), do: string(bin)
  defp enc(%DateTime{} = dt), do: string(DateTime.to_iso8601(dt))
  defp enc(%NaiveDateTime{} = dt), do: string(NaiveDateTime.to_iso8601(dt))

  defp enc(map) when is_map(map) do
    pairs = Enum.map(map, fn {key, value} -> [string(to_string(key)), ?:, enc(value)] end)
    [?{, Enum.intersperse(pairs, ?,), ?}]
  end

  defp enc(list) when is_list(list), do: [?[, Enum.intersperse(Enum.map(list, &enc/1), ?,), ?]]

  defp string(bin), do: [?", escape(bin), ?"]

  # Copies runs of ordinary bytes untouched; multi-byte UTF-8 is never escaped.
  defp escape(bin) do
    case :binary.match(bin, [~s("), "\\" | Enum.map(0..31, &<<&1>>)]) do
      :nomatch ->
        bin

      {pos, 1} ->
        <<plain::binary-size(pos), char, rest::binary>> = bin
        [plain, escape_char(char) | escape(rest)]
    end
  end

  defp escape_char(?"), do: ~S(\")
  defp escape_char(?\\), do: ~S(\\)
  defp escape_char(?\n), do: ~S(\n)
  defp escape_char(?\r), do: ~S(\r)
  defp escape_char(?\t), do: ~S(\t)

  defp escape_char(char),
    do: "\\u" <> String.pad_leading(Integer.to_string(char, 16) |> String.downcase(), 4, "0")

  ## Decoding

  @doc "Decodes one JSON value, returning `{:ok, term}` or `{:error, message}`."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(bin) do
    {:ok, decode!(bin)}
  rescue
    error in DecodeError -> {:error, error.message}
  end

  @doc "Decodes one JSON value or raises `Peer.JSON.DecodeError`."
  @spec decode!(binary()) :: term()
  def decode!(bin) when is_binary(bin) do
    case value(ws(bin)) do
      {value, rest} ->
        if ws(rest) == "", do: value, else: fail("trailing data", rest)
    end
  end

  defp ws(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: ws(rest)
  defp ws(bin), do: bin

  defp value(<<?{, rest::binary>>), do: object(ws(rest), %{})
  defp value(<<?[, rest::binary>>), do: array(ws(rest), [])
  defp value(<<?", rest::binary>>), do: str(rest, [])
  defp value(<<"true", rest::binary>>), do: {true, rest}
  defp value(<<"false", rest::binary>>), do: {false, rest}
  defp value(<<"null", rest::binary>>), do: {nil, rest}
  defp value(bin), do: number(bin)

  defp object(<<?}, rest::binary>>, acc) when acc == %{}, do: {acc, rest}

  defp object(<<?", rest::binary>>, acc) do
    {key, rest} = str(rest, [])

    case ws(rest) do
      <<?:, rest::binary>> ->
        {val, rest} = value(ws(rest))
        acc = Map.put(acc, key, val)

        case ws(rest) do
          <<?,, rest::binary>> -> object(ws(rest), acc)
          <<?}, rest::binary>> -> {acc, rest}
          other -> fail("expected , or }", other)
        end

      other ->
        fail("expected :", other)
    end
  end

  defp object(other, _acc), do: fail("expected a string key", other)

  defp array(<<?], rest::binary>>, []), do: {[], rest}

  defp array(bin, acc) do
    {val, rest} = value(bin)

    case ws(rest) do
      <<?,, rest::binary>> -> array(ws(rest), [val | acc])
      <<?], rest::binary>> -> {Enum.reverse([val | acc]), rest}
      other -> fail("expected , or ]", other)
    end
  end

  defp str(bin, acc) do
    case :binary.match(bin, [~s("), "\\"]) do
      :nomatch ->
        fail("unterminated string", bin)

      {pos, 1} ->
        <<plain::binary-size(pos), char, rest::binary>> = bin

        if char == ?" do
          {IO.iodata_to_binary([acc, plain]), rest}
        else
          {decoded, rest} = unescape(rest)
          str(rest, [acc, plain, decoded])
        end
    end
  end

  defp unescape(<<?", rest::binary>>), do: {~s("), rest}
  defp unescape(<<?\\, rest::binary>>), do: {"\\", rest}
  defp unescape(<<?/, rest::binary>>), do: {"/", rest}
  defp unescape(<<?b, rest::binary>>), do: {"\b", rest}
  defp unescape(<<?f, rest::binary>>), do: {"\f", rest}
  defp unescape(<<?n, rest::binary>>), do: {"\n", rest}
  defp unescape(<<?r, rest::binary>>), do: {"\r", rest}
  defp unescape(<<?t, rest::binary>>), do: {"\t", rest}

  # A UTF-16 surrogate pair written as two \u escapes is one code point.
  defp unescape(<<?u, hi::binary-size(4), "\\u", lo::binary-size(4), rest::binary>> = bin) do
    with {h, ""} when h in 0xD800..0xDBFF <- Integer.parse(hi, 16),
         {l, ""} when l in 0xDC00..0xDFFF <- Integer.parse(lo, 16) do
      {<<0x10000 + (h - 0xD800) * 0x400 + (l - 0xDC00)::utf8>>, rest}
    else
      _ -> unescape_one(bin)
    end
  end

  defp unescape(bin), do: unescape_one(bin)

  defp unescape_one(<<?u, hex::binary-size(4), rest::binary>> = bin) do
    case Integer.parse(hex, 16) do
      {code, ""} when code not in 0xD800..0xDFFF -> {<<code::utf8>>, rest}
      _ -> fail("bad \\u escape", bin)
    end
  end

  defp unescape_one(bin), do: fail("bad escape", bin)

  @number ~r/\A-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/

  defp number(bin) do
    case Regex.run(@number, bin) do
      [int] ->
        {String.to_integer(int),
         binary_part(bin, byte_size(int), byte_size(bin) - byte_size(int))}

      [num | _] ->
        rest = binary_part(bin, byte_size(num), byte_size(bin) - byte_size(num))
        # Float.parse wants a fraction or exponent with a mantissa it accepts, e.g. "1e5".
        {float, ""} = Float.parse(num)
        {float, rest}

      nil ->
        fail("unexpected input", bin)
    end
  end

  defp fail(what, at) do
    raise DecodeError, "#{what} at #{inspect(binary_part(at, 0, min(byte_size(at), 20)))}"
  end
end
