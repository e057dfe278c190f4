import { describe, it, expect } from 'vitest';
import { TitleExtractor, extractTitle, normalizeTitle } from './extract-title.js';

describe('extractTitle', () => {
  it('when the title has named and numeric entities, then they are decoded', () => {
    expect(extractTitle('<title>Tom &amp; Jerry&#39;s caf&eacute; &#x4E2D;&#25991;</title>')).toEqual({
      title: "Tom & Jerry's café 中文",
      source: 'title',
    });
  });

  it('when tag names are upper or mixed case, then the title is still found', () => {
    expect(extractTitle('<HTML><HEAD><TITLE>Shouting</TITLE></HEAD></HTML>')?.title).toBe('Shouting');
    expect(extractTitle('<html><head><TiTlE>Mixed</tItLe></head></html>')?.title).toBe('Mixed');
  });

  it('when the title has runs of whitespace and line breaks, then they collapse to single spaces', () => {
    expect(extractTitle('<title>\n\t  Hello,\r\n   \t world  \u00a0 </title>')?.title).toBe('Hello, world');
  });

  it('when there are several titles, then the first one wins', () => {
    expect(extractTitle('<head><title>First</title></head><body><title>Second</title></body>')?.title).toBe('First');
  });

  it('when an svg or math element has a title before the document title, then it is ignored', () => {
    const html =
      '<body><svg viewBox="0 0 1 1"><title>Icon</title><g><title>Nested</title></g></svg>' +
      '<math><title>Formula</title></math><title>Real</title></body>';
    expect(extractTitle(html)).toEqual({ title: 'Real', source: 'title' });
  });

  it('when a self-closing svg precedes the title, then the title is still found', () => {
    expect(extractTitle('<svg/><title>After svg</title>')?.title).toBe('After svg');
  });

  it('when the title contains markup, then it is kept as text', () => {
    expect(extractTitle('<title>a <b> c</b></title><p>x</p>')?.title).toBe('a <b> c</b>');
  });

  it('when a script mentions a title before the real one, then the script is skipped', () => {
    const html = '<script>document.write("<title>fake</title>")</script><!-- <title>comment</title> --><title>real</title>';
    expect(extractTitle(html)?.title).toBe('real');
  });

  it('when there is no title but an og:title meta, then og:title is used', () => {
    const html = '<head><meta property="og:title" content="  Open &amp; Graph  "></head><body>text</body>';
    expect(extractTitle(html)).toEqual({ title: 'Open & Graph', source: 'og:title' });
  });

  it('when og:title is given with name= instead of property=, then it is still used', () => {
    expect(extractTitle('<meta name="OG:Title" content="Lenient">')).toEqual({ title: 'Lenient', source: 'og:title' });
  });

  it('when there are both a title and og:title, then the title wins even if it comes later', () => {
    const html = '<meta property="og:title" content="Graph"><title>Document</title>';
    expect(extractTitle(html)).toEqual({ title: 'Document', source: 'title' });
  });

  it('when there is neither a title nor og:title, then the result is undefined', () => {
    expect(extractTitle('<html><head><meta charset="utf-8"></head><body><h1>Hi</h1></body></html>')).toBeUndefined();
    expect(extractTitle('')).toBeUndefined();
  });

  it('when the title is empty or only whitespace, then it counts as no title', () => {
    expect(extractTitle('<title></title>')).toBeUndefined();
    expect(extractTitle('<title> \n\t </title>')).toBeUndefined();
  });

  it('when an empty title is followed by og:title or a later title, then those are used', () => {
    expect(extractTitle('<title> </title><meta property="og:title" content="Graph">')).toEqual({
      title: 'Graph',
      source: 'og:title',
    });
    expect(extractTitle('<title></title><title>Second</title>')?.title).toBe('Second');
  });

  it('when a complete document ends inside an unclosed title, then the text up to the end is the title', () => {
    expect(extractTitle('<title>Never closed')?.title).toBe('Never closed');
  });
});

describe('TitleExtractor', () => {
  const doc =
    '<!DOCTYPE html><html><head><meta charset="utf-8">' +
    '<TITLE>  Caf&eacute; &amp; cr&#232;me &#x4E2D;&#25991; \u00e9\u4e2d😀 &lt;b&gt; </TITLE>' +
    '<title>second</title></head><body>x</body></html>';
  const expected = 'Café & crème 中文 é中😀 <b>';

  it('when the document is split into two chunks at every possible position, then the title is the same', () => {
    expect(extractTitle(doc)?.title).toBe(expected);
    for (let i = 0; i <= doc.length; i++) {
      const extractor = new TitleExtractor();
      extractor.write(doc.slice(0, i));
      extractor.write(doc.slice(i));
      expect(extractor.end(), `split at ${i}`).toEqual({ title: expected, source: 'title' });
    }
  });

  it('when the document is fed one character at a time, then the title is the same', () => {
    const extractor = new TitleExtractor();
    for (const ch of doc.split('')) extractor.write(ch);
    expect(extractor.end()?.title).toBe(expected);
  });

  it('when an og:title document is split at every position, then the fallback is the same', () => {
    const og = '<head><meta property="og:title" content="A &amp; B &eacute;"></head>';
    for (let i = 0; i <= og.length; i++) {
      const extractor = new TitleExtractor();
      extractor.write(og.slice(0, i));
      extractor.write(og.slice(i));
      expect(extractor.end(), `split at ${i}`).toEqual({ title: 'A & B é', source: 'og:title' });
    }
  });

  it('when the closing title tag has been read, then write returns true and done is set', () => {
    const extractor = new TitleExtractor();
    expect(extractor.write('<head><title>Par')).toBe(false);
    expect(extractor.done).toBe(false);
    expect(extractor.write('tial</tit')).toBe(false);
    expect(extractor.write('le>')).toBe(true);
    expect(extractor.done).toBe(true);
    // Input after completion is ignored.
    expect(extractor.write('<title>other</title>')).toBe(true);
    expect(extractor.end()).toEqual({ title: 'Partial', source: 'title' });
  });

  it('when only og:title has been seen, then write keeps returning false', () => {
    const extractor = new TitleExtractor();
    expect(extractor.write('<meta property="og:title" content="Graph"><body>')).toBe(false);
    expect(extractor.done).toBe(false);
    expect(extractor.end()).toEqual({ title: 'Graph', source: 'og:title' });
  });

  it('when the input is truncated inside a title, then the partial title is not returned', () => {
    const extractor = new TitleExtractor();
    extractor.write('<meta property="og:title" content="Graph"><title>Half a ti');
    expect(extractor.end({ truncated: true })).toEqual({ title: 'Graph', source: 'og:title' });
  });
});

describe('normalizeTitle', () => {
  it('when given whitespace runs of any kind, then they become one space and the ends are trimmed', () => {
    expect(normalizeTitle('  a\t\tb\n\nc\u00a0\u2003d  ')).toBe('a b c d');
    expect(normalizeTitle(' \n ')).toBe('');
  });
});
