/**
 * Streaming extraction of a document's title with htmlparser2.
 *
 * The title is the text of the first non-empty `<title>` element of the document that is
 * not inside `<svg>` or `<math>` (where `<title>` is an SVG/MathML element, a tooltip,
 * not the document's title). Failing that, it is the `content` of the first non-empty
 * `<meta property="og:title">`.
 *
 * The parser is fed decoded text in chunks, so a page can be read only as far as its
 * title. htmlparser2 tokenizes `<title>` content as raw text with character references
 * (RCDATA, as the HTML standard does): `<title>a <b> c</title>` yields "a <b> c", and
 * entities such as `&amp;`, `&eacute;` or `&#x4E2D;` are decoded, also when a chunk
 * boundary falls inside a tag or an entity.
 */
import { Parser } from 'htmlparser2';

export interface ExtractedTitle {
  title: string;
  source: 'title' | 'og:title';
}

export interface EndOptions {
  /**
   * The input was cut off (a read limit), so it is not the whole document. A `<title>`
   * still open at that point is then discarded rather than returned half-read.
   * @defaultValue false
   */
  truncated?: boolean;
}

/** Elements whose `<title>` children belong to another vocabulary (SVG, MathML). */
const FOREIGN_ELEMENTS = new Set(['svg', 'math']);

/**
 * Collapses every whitespace run (as matched by `/\s+/`, so including NBSP and other
 * Unicode spaces, and line breaks) to one space and trims the ends.
 */
export function normalizeTitle(raw: string): string {
  return raw.replace(/\s+/g, ' ').trim();
}

/** Whether a `<meta>` element's attributes make it an Open Graph title. */
function isOgTitleMeta(attribs: Record<string, string>): boolean {
  // The standard attribute is `property`; `name="og:title"` is a common mistake that
  // consumers of Open Graph tolerate, so it is accepted too.
  const key = attribs.property ?? attribs.name;
  return key !== undefined && key.trim().toLowerCase() === 'og:title';
}

/**
 * Incremental title extractor. Feed it decoded text with {@link write} until it reports
 * the title complete (or the input runs out), then call {@link end} for the result.
 */
export class TitleExtractor {
  readonly #parser: Parser;
  /** How many `<svg>`/`<math>` elements are open around the current position. */
  #foreignDepth = 0;
  /** Text of the `<title>` being read, or undefined when not inside one. */
  #titleText: string | undefined;
  #title: string | undefined;
  #ogTitle: string | undefined;
  #ended = false;
  #truncated = false;

  constructor() {
    this.#parser = new Parser(
      {
        onopentag: (name, attribs) => this.#onOpenTag(name, attribs),
        onclosetag: (name, isImplied) => this.#onCloseTag(name, isImplied),
        ontext: (text) => {
          if (this.#titleText !== undefined) this.#titleText += text;
        },
      },
      // HTML mode lower-cases tag and attribute names, so `<TITLE>` is `title`.
      { decodeEntities: true },
    );
  }

  /** True once a `<title>` has been read completely; further input is ignored. */
  get done(): boolean {
    return this.#title !== undefined;
  }

  /**
   * Feeds the next chunk of decoded text (chunks may split tags, entities or characters'
   * surrogate pairs anywhere). Returns true once the title is complete, at which point the
   * caller may stop reading.
   */
  write(chunk: string): boolean {
    if (this.done || this.#ended) return this.done;
    if (chunk !== '') this.#parser.write(chunk);
    return this.done;
  }

  /**
   * Ends the input and returns the title, the `og:title` fallback, or undefined.
   * At the end of a complete document an unclosed `<title>` runs to the end of the
   * input, as in browsers; pass `{ truncated: true }` when the input was cut short.
   */
  end(options: EndOptions = {}): ExtractedTitle | undefined {
    if (!this.done && !this.#ended) {
      this.#truncated = options.truncated ?? false;
      this.#ended = true;
      // Flushes buffered text and closes open elements (an open <title> included).
      this.#parser.end();
    }
    this.#ended = true;
    if (this.#title !== undefined) return { title: this.#title, source: 'title' };
    if (this.#ogTitle !== undefined) return { title: this.#ogTitle, source: 'og:title' };
    return undefined;
  }

  #onOpenTag(name: string, attribs: Record<string, string>): void {
    if (FOREIGN_ELEMENTS.has(name)) {
      this.#foreignDepth++;
    } else if (name === 'title') {
      if (this.#foreignDepth === 0 && this.#title === undefined) this.#titleText = '';
    } else if (name === 'meta' && this.#ogTitle === undefined && isOgTitleMeta(attribs)) {
      const content = normalizeTitle(attribs.content ?? '');
      if (content !== '') this.#ogTitle = content;
    }
  }

  #onCloseTag(name: string, isImplied: boolean): void {
    if (FOREIGN_ELEMENTS.has(name)) {
      this.#foreignDepth = Math.max(0, this.#foreignDepth - 1);
    } else if (name === 'title' && this.#titleText !== undefined) {
      const text = this.#titleText;
      this.#titleText = undefined;
      // An implied close means the input ended inside the <title>.
      if (isImplied && this.#truncated) return;
      const title = normalizeTitle(text);
      // An empty title is no title: keep looking for a later one or for og:title.
      if (title !== '') {
        this.#title = title;
        // Nothing after the title matters: stop tokenizing the rest of the chunk being written.
        this.#parser.pause();
      }
    }
  }
}

/** Extracts the title of a complete HTML document held in memory. */
export function extractTitle(html: string): ExtractedTitle | undefined {
  const extractor = new TitleExtractor();
  extractor.write(html);
  return extractor.end();
}
