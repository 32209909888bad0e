import type { Plugin } from 'graphql-yoga';
import type { Metrics } from '../../metrics.js';

/** The open-subscriptions gauge: +1 when a subscription starts streaming, -1 when it ends. */
export function countSubscriptions(metrics: Metrics): Plugin {
  return {
    onSubscribe: () => ({
      onSubscribeResult: ({ result }) => {
        if (!(Symbol.asyncIterator in result)) return;
        metrics.subscriptions.inc();
        return { onEnd: () => metrics.subscriptions.dec() };
      },
    }),
  };
}
