const ONES = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
];
const TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];

/**
 * An English cardinal as Python's num2words(n) writes it (SmolVLM2's video prompt counts frames with it):
 * "twenty-one", "one hundred and five", "one thousand and twenty-four", "two thousand, three hundred".
 * Integers 0 … 999 999.
 */
export function cardinalWords(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= 1_000_000) throw new RangeError(`cardinalWords: ${n} is out of range`);
  if (n < 1000) return belowThousand(n);
  const thousands = `${belowThousand(Math.floor(n / 1000))} thousand`;
  const rest = n % 1000;
  if (rest === 0) return thousands;
  return `${thousands}${rest < 100 ? ' and ' : ', '}${belowThousand(rest)}`;
}

function belowThousand(n: number): string {
  if (n < 100) return belowHundred(n);
  const hundreds = `${ONES[Math.floor(n / 100)]} hundred`;
  return n % 100 === 0 ? hundreds : `${hundreds} and ${belowHundred(n % 100)}`;
}

function belowHundred(n: number): string {
  if (n < 20) return ONES[n];
  return n % 10 === 0 ? TENS[Math.floor(n / 10)] : `${TENS[Math.floor(n / 10)]}-${ONES[n % 10]}`;
}
