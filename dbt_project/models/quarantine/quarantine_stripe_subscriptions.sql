{{ config(alias='stripe_subscriptions') }}
{{ quarantine_view('stripe', 'subscriptions') }}
