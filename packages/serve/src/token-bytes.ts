/**
 * The bytes a token stands for, for chat logprobs' `bytes` (OpenAI: "useful when characters are represented
 * by multiple tokens ... to reconstruct the text"). A token holding part of a multi-byte character decodes
 * alone to U+FFFD, and the bytes of "�" ([239, 191, 189]) say nothing; vLLM sends those too. The vocabulary
 * knows the real bytes: byte-level BPE writes each byte as one character (GPT-2's bytes_to_unicode), and
 * SentencePiece's byte fallback writes it as `<0xNN>`, as llama.cpp's token_to_piece reads them.
 */

/** GPT-2's bytes_to_unicode, inverted: the character byte-level BPE writes → the byte. */
function byteLevelDecoder(): Map<string, number> {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) out.set(String.fromCodePoint(printable(b) ? b : 256 + n++), b);
  return out;
}

function usesByteLevel(part: unknown): boolean {
  if (typeof part !== 'object' || part === null) return false;
  const p = part as { type?: unknown; decoders?: unknown[] };
  return p.type === 'ByteLevel' || (Array.isArray(p.decoders) && p.decoders.some(usesByteLevel));
}

/** `(id, decoded text) → bytes`: the decoded text's UTF-8 unless it lost bytes (U+FFFD) and the vocabulary has them. */
export type TokenBytes = (id: number, decoded: string) => number[];

export const utf8Bytes: TokenBytes = (_id, decoded) => [...Buffer.from(decoded, 'utf8')];

/** From a parsed tokenizer.json (TokenizerSpec.json). */
export function tokenBytesOf(tokenizerJson: Record<string, unknown>): TokenBytes {
  const model = (tokenizerJson.model ?? {}) as { vocab?: unknown; byte_fallback?: unknown };
  const pieces = new Map<number, string>();
  if (Array.isArray(model.vocab)) model.vocab.forEach((e, id) => Array.isArray(e) && typeof e[0] === 'string' && pieces.set(id, e[0])); // Unigram: [piece, score]
  else if (model.vocab && typeof model.vocab === 'object') for (const [piece, id] of Object.entries(model.vocab)) if (typeof id === 'number') pieces.set(id, piece);
  const byteLevel = usesByteLevel(tokenizerJson.decoder) ? byteLevelDecoder() : null;
  const fromPiece = (piece: string): number[] | null => {
    const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (hex && model.byte_fallback === true) return [parseInt(hex[1]!, 16)];
    if (!byteLevel) return null;
    const out: number[] = [];
    for (const ch of piece) {
      const b = byteLevel.get(ch);
      if (b === undefined) return null;
      out.push(b);
    }
    return out;
  };
  return (id, decoded) => {
    if (!decoded.includes('\uFFFD')) return utf8Bytes(id, decoded);
    const piece = pieces.get(id);
    return (piece !== undefined ? fromPiece(piece) : null) ?? utf8Bytes(id, decoded);
  };
}
