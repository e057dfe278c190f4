/**
 * Turning the bytes of an HTML response into text.
 *
 * The encoding is chosen roughly the way the WHATWG HTML standard ("determining the
 * character encoding") does it, in this order:
 *
 *   1. a byte order mark (UTF-8, UTF-16LE, UTF-16BE);
 *   2. the `charset=` parameter of the Content-Type header;
 *   3. a `<meta charset>` or `<meta http-equiv="content-type" content="...; charset=...">`
 *      found by prescanning the first 1024 bytes;
 *   4. otherwise UTF-8 if the bytes seen so far are valid UTF-8, else windows-1252.
 *
 * Step 4 is a simplification: browsers fall back to a locale-dependent legacy encoding
 * (usually windows-1252) and may run further detection heuristics. "Valid UTF-8 wins" is
 * right for the overwhelming majority of the modern web and degrades to the browsers'
 * usual answer otherwise.
 *
 * Labels are resolved with `whatwg-encoding` (so `gb2312` means GBK and `latin1` means
 * windows-1252, as in browsers) and text is decoded with iconv-lite's streaming decoders,
 * so a multi-byte character split across two network chunks still decodes correctly.
 */
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import iconv from 'iconv-lite';

/**
 * `whatwg-encoding` ships no type declarations, so it is loaded through `require` and
 * given the one signature we use.
 */
const require = createRequire(import.meta.url);
const whatwgEncoding = require('whatwg-encoding') as {
  /** Maps an encoding label to its WHATWG encoding name, or null for unknown labels. */
  labelToName(label: string): string | null;
};

/** How many leading bytes the `<meta>` prescan looks at (the WHATWG number). */
export const PRESCAN_BYTES = 1024;

/** Where the encoding that decodes a document came from. */
export type EncodingSource = 'bom' | 'header' | 'meta' | 'default';

/**
 * Some WHATWG encodings are defined as supersets of the classic charsets of the same
 * name; iconv-lite has those supersets under other names.
 */
const ICONV_NAME_OF: Readonly<Record<string, string>> = {
  // The WHATWG "GBK" decoder is the gb18030 decoder.
  GBK: 'gb18030',
  // WHATWG Big5 is Big5 with the HKSCS extensions.
  Big5: 'big5hkscs',
  // WHATWG EUC-KR is Microsoft's code page 949 (Unified Hangul Code).
  'EUC-KR': 'cp949',
  // iconv-lite lacks x-user-defined (only reachable through the Content-Type header);
  // windows-1252 decodes its ASCII half identically.
  'x-user-defined': 'windows-1252',
};

/**
 * Resolves an encoding label ("utf8", "gb2312", "Shift-JIS", "latin1", ...) to the WHATWG
 * encoding name, or undefined when the label is unknown or not decodable here (such as
 * the "replacement" labels `iso-2022-kr` and `hz-gb-2312`).
 */
export function encodingForLabel(label: string): string | undefined {
  const name = whatwgEncoding.labelToName(label);
  if (name === null) return undefined;
  return iconv.encodingExists(iconvName(name)) ? name : undefined;
}

function iconvName(whatwgName: string): string {
  return ICONV_NAME_OF[whatwgName] ?? whatwgName;
}

/**
 * The encoding named by the `charset` parameter of a Content-Type header value, or
 * undefined when there is none or it names nothing we know.
 */
export function charsetFromContentType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const match = /;\s*charset\s*=\s*(?:"([^"]*)"|'([^']*)'|([^;\s]*))/i.exec(contentType);
  const label = match?.[1] ?? match?.[2] ?? match?.[3];
  return label ? encodingForLabel(label) : undefined;
}

/** The encoding announced by a byte order mark, and the mark's length. */
export function sniffBom(bytes: Uint8Array): { encoding: string; length: number } | undefined {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    return { encoding: 'UTF-8', length: 3 };
  }
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return { encoding: 'UTF-16BE', length: 2 };
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return { encoding: 'UTF-16LE', length: 2 };
  return undefined;
}

/** Whether `bytes` (fewer than 3) could still grow into a byte order mark. */
function mayBeBomPrefix(bytes: Uint8Array): boolean {
  const boms = [[0xef, 0xbb, 0xbf], [0xfe, 0xff], [0xff, 0xfe]];
  return boms.some((bom) => bytes.length < bom.length && bytes.every((b, i) => b === bom[i]));
}

// ---------------------------------------------------------------------------------------
// <meta> prescan
// ---------------------------------------------------------------------------------------

/** ASCII whitespace as the HTML standard defines it (TAB, LF, FF, CR, SPACE). */
const isSpace = (c: string | undefined): boolean =>
  c === ' ' || c === '\t' || c === '\n' || c === '\f' || c === '\r';

/** Thrown inside the prescan when the bytes run out in the middle of a construct. */
class EndOfInput extends Error {}

/**
 * Finds the encoding declared by a `<meta>` element near the start of a document,
 * following the WHATWG "prescan a byte stream to determine its encoding" algorithm
 * (comments and other tags are skipped, the first usable declaration wins).
 *
 * Only the first {@link PRESCAN_BYTES} bytes are examined. Returns undefined when no
 * usable declaration is found, including when the input ends in the middle of a `<meta>`
 * tag: feeding the same prefix again with more bytes may then find one.
 */
export function prescanMetaCharset(bytes: Uint8Array): string | undefined {
  // latin1 maps each byte to exactly one UTF-16 code unit, so string positions are byte
  // positions and the ASCII-only syntax of the prescan can be matched with string tools.
  const s = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, PRESCAN_BYTES))
    .toString('latin1');
  try {
    return new MetaPrescanner(s).run();
  } catch (err) {
    if (err instanceof EndOfInput) return undefined;
    throw err;
  }
}

class MetaPrescanner {
  #pos = 0;
  constructor(private readonly s: string) {}

  run(): string | undefined {
    const { s } = this;
    while (this.#pos < s.length) {
      if (s.startsWith('<!--', this.#pos)) {
        // The "-->" may share its dashes with the opening "<!--" ("<!-->" is a comment).
        const end = s.indexOf('-->', this.#pos + 2);
        if (end < 0) return undefined;
        this.#pos = end + 3;
      } else if (/^<meta[\s/]/i.test(s.slice(this.#pos, this.#pos + 6))) {
        this.#pos += 5;
        const found = this.#meta();
        if (found !== undefined) return found;
      } else if (/^<\/?[a-z]/i.test(s.slice(this.#pos, this.#pos + 3))) {
        // Some other tag: skip its name and attributes (whose values may contain '>').
        this.#pos += s[this.#pos + 1] === '/' ? 2 : 1;
        while (this.#pos < s.length && !isSpace(s[this.#pos]) && s[this.#pos] !== '>') this.#pos++;
        while (this.#attribute() !== undefined) {
          // discard
        }
      } else if (s.startsWith('<!', this.#pos) || s.startsWith('</', this.#pos) || s.startsWith('<?', this.#pos)) {
        const end = s.indexOf('>', this.#pos);
        if (end < 0) return undefined;
        this.#pos = end + 1;
      } else {
        this.#pos++;
      }
    }
    return undefined;
  }

  /** Reads the attributes of a `<meta>` tag; returns the encoding it declares, if any. */
  #meta(): string | undefined {
    const seen = new Set<string>();
    let gotPragma = false;
    let needPragma: boolean | undefined;
    let charset: string | undefined;

    for (let attr = this.#attribute(); attr !== undefined; attr = this.#attribute()) {
      const [name, value] = attr;
      if (seen.has(name)) continue;
      seen.add(name);
      if (name === 'http-equiv') {
        if (value.toLowerCase() === 'content-type') gotPragma = true;
      } else if (name === 'content') {
        if (charset === undefined) {
          const label = charsetFromMetaContent(value);
          if (label !== undefined) {
            charset = encodingForLabel(label);
            needPragma = true;
          }
        }
      } else if (name === 'charset') {
        charset = encodingForLabel(value);
        needPragma = false;
      }
    }

    if (needPragma === undefined || (needPragma && !gotPragma) || charset === undefined) {
      return undefined;
    }
    // A document cannot declare itself UTF-16 in ASCII bytes; the standard reads such a
    // declaration as UTF-8. x-user-defined is likewise treated as windows-1252.
    if (charset === 'UTF-16BE' || charset === 'UTF-16LE') return 'UTF-8';
    if (charset === 'x-user-defined') return 'windows-1252';
    return charset;
  }

  /**
   * The WHATWG "get an attribute" step: returns [lower-cased name, value] and leaves the
   * position after it, or undefined at the end of the tag (position on the '>').
   */
  #attribute(): [string, string] | undefined {
    const { s } = this;
    const at = (): string => {
      const c = s[this.#pos];
      if (c === undefined) throw new EndOfInput();
      return c;
    };
    const skipSpace = (): void => {
      while (isSpace(at())) this.#pos++;
    };

    while (isSpace(at()) || at() === '/') this.#pos++;
    if (at() === '>') return undefined;

    // The name: up to '=', whitespace, '/' or '>'. A leading '=' belongs to the name.
    let name = '';
    for (;;) {
      const c = at();
      if (c === '=' && name !== '') break;
      if (isSpace(c)) {
        skipSpace();
        if (at() !== '=') return [name, ''];
        break;
      }
      if (c === '/' || c === '>') return [name, ''];
      name += c.toLowerCase();
      this.#pos++;
    }

    // Past the '='; the value may be quoted, unquoted, or missing.
    this.#pos++;
    skipSpace();
    const first = at();
    if (first === '"' || first === "'") {
      const end = s.indexOf(first, this.#pos + 1);
      if (end < 0) throw new EndOfInput();
      const value = s.slice(this.#pos + 1, end);
      this.#pos = end + 1;
      return [name, value];
    }
    if (first === '>') return [name, ''];
    let value = '';
    while (!isSpace(at()) && at() !== '>') {
      value += at();
      this.#pos++;
    }
    return [name, value];
  }
}

/**
 * The WHATWG "extract a character encoding from a meta element" algorithm, applied to a
 * `content` attribute such as `text/html; charset=gb2312`. Returns the raw label.
 */
function charsetFromMetaContent(content: string): string | undefined {
  const lower = content.toLowerCase();
  let pos = 0;
  for (;;) {
    const found = lower.indexOf('charset', pos);
    if (found < 0) return undefined;
    pos = found + 'charset'.length;
    while (isSpace(content[pos])) pos++;
    // "charset" not followed by '=' is just a word; keep looking after it.
    if (content[pos] !== '=') continue;
    pos++;
    while (isSpace(content[pos])) pos++;
    const quote = content[pos];
    if (quote === '"' || quote === "'") {
      const end = content.indexOf(quote, pos + 1);
      // An unterminated quote voids the declaration.
      return end < 0 ? undefined : content.slice(pos + 1, end);
    }
    let end = pos;
    while (end < content.length && !isSpace(content[end]) && content[end] !== ';') end++;
    return end > pos ? content.slice(pos, end) : undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Streaming decoder
// ---------------------------------------------------------------------------------------

/**
 * Whether `bytes` is valid UTF-8, allowing the last character to be cut off (the bytes
 * are a prefix of a longer document).
 */
export function isUtf8Prefix(bytes: Uint8Array): boolean {
  // Walk back over at most 3 continuation bytes to the start of the last character.
  let start = bytes.length;
  for (let i = bytes.length - 1; i >= 0 && i >= bytes.length - 4; i--) {
    const b = bytes[i]!;
    if ((b & 0xc0) !== 0x80) {
      start = i;
      break;
    }
  }
  const lead = bytes[start];
  if (lead !== undefined && lead >= 0xc0) {
    const needed = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    // An incomplete last character is ignored; a complete one is checked with the rest.
    if (bytes.length - start < needed) return isUtf8(bytes.subarray(0, start));
  }
  return isUtf8(bytes);
}

/**
 * Decodes a byte stream to text, choosing the encoding as described at the top of this
 * file. While it still needs bytes to decide (at most {@link PRESCAN_BYTES}) it holds
 * them back and `write` returns ''.
 */
export class BodyDecoder {
  readonly #headerEncoding: string | undefined;
  #pending: Buffer[] = [];
  #decoder: iconv.DecoderStream | undefined;
  #encoding: string | undefined;
  #source: EncodingSource | undefined;

  /** @param headerEncoding the WHATWG encoding from the Content-Type header, if any */
  constructor(headerEncoding?: string) {
    this.#headerEncoding = headerEncoding;
  }

  /** The WHATWG name of the encoding in use, once chosen. */
  get encoding(): string | undefined {
    return this.#encoding;
  }

  /** Where the encoding in use came from, once chosen. */
  get source(): EncodingSource | undefined {
    return this.#source;
  }

  /** Decodes the next chunk of bytes. */
  write(chunk: Uint8Array): string {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.#decoder) return this.#decoder.write(bytes);
    this.#pending.push(bytes);
    return this.#tryToChoose(false);
  }

  /**
   * Ends the stream: chooses an encoding if still undecided and flushes everything,
   * including an incomplete trailing character (as U+FFFD).
   */
  end(): string {
    const text = this.#decoder ? '' : this.#tryToChoose(true);
    return text + (this.#decoder?.end() ?? '');
  }

  /** Chooses the encoding if enough is known; returns the text decodable so far. */
  #tryToChoose(atEnd: boolean): string {
    const head = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    this.#pending = [head];

    if (head.length < 3 && !atEnd && mayBeBomPrefix(head)) return '';
    const bom = sniffBom(head);
    if (bom) return this.#choose(bom.encoding, 'bom', head.subarray(bom.length));
    if (this.#headerEncoding) return this.#choose(this.#headerEncoding, 'header', head);

    const declared = prescanMetaCharset(head);
    if (declared) return this.#choose(declared, 'meta', head);

    // No declaration yet. Wait for the whole prescan window unless the stream ended or
    // the <head> is visibly over (a <meta charset> after that point would be unusual),
    // so that a server that flushes a small <head> early is not waited on.
    if (!atEnd && head.length < PRESCAN_BYTES && !/<\/head|<body/i.test(head.toString('latin1'))) {
      return '';
    }
    return this.#choose(isUtf8Prefix(head) ? 'UTF-8' : 'windows-1252', 'default', head);
  }

  #choose(encoding: string, source: EncodingSource, bytes: Buffer): string {
    this.#encoding = encoding;
    this.#source = source;
    // A BOM has been removed above when present; a second one is content.
    this.#decoder = iconv.getDecoder(iconvName(encoding), { stripBOM: false });
    this.#pending = [];
    return this.#decoder.write(bytes);
  }
}
