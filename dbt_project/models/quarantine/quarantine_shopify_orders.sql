{{ config(alias='shopify_orders') }}
{{ quarantine_view('shopify', 'orders') }}
