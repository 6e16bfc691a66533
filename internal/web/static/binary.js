// ssehubBinary turns the data of an ssehub binary event into its bytes:
// { type: "image/png", bytes: Uint8Array }, or null for a text event.
async function ssehubBinary(data) {
  if (!data.startsWith("ssehub-binary ")) return null; // a text event
  const nl = data.indexOf("\n"); // "ssehub-binary <type> <encoding> <size>\n<base64>"
  if (nl < 0) throw new Error("malformed binary event");
  const [, type, encoding, size] = data.slice(0, nl).split(" ");
  let bytes = Uint8Array.from(atob(data.slice(nl + 1)), (c) => c.charCodeAt(0));
  if (encoding === "gzip") {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  if (bytes.length !== Number(size)) throw new Error("malformed binary event");
  return { type, bytes };
}
